<?php
// tests/test_probe_php.py: runs validation/app/probe.php with a stand-in for mysqli:
// the writer db1 holds the row; any other node misses each write for the number of
// reads the script (argv[3], comma-separated, one per write) says. argv[2]: the query.
declare(strict_types=1);
const MYSQLI_REPORT_ERROR = 1;
const MYSQLI_REPORT_STRICT = 2;
function mysqli_report(int $flags): bool { return true; }
class mysqli_sql_exception extends RuntimeException {}
class mysqli_result {
    public function __construct(private int $v) {}
    public function fetch_row(): ?array { return [$this->v]; }
    public function free(): void {}
}
$GLOBALS['v'] = 100;
$GLOBALS['pending'] = 0;
$GLOBALS['script'] = array_map('intval', array_filter(explode(',', $argv[3]), 'strlen'));
class mysqli {
    public function __construct(public string $host, ...$rest) {}
    public function query(string $sql): mysqli_result|bool {
        if (str_starts_with($sql, 'UPDATE')) {
            $GLOBALS['v']++;
            $GLOBALS['pending'] = array_shift($GLOBALS['script']) ?? 0;
            return true;
        }
        if (str_starts_with($sql, 'SET')) { return true; }
        if ($this->host !== 'db1' && $GLOBALS['pending'] > 0) {
            $GLOBALS['pending']--;
            usleep(100);
            return new mysqli_result($GLOBALS['v'] - 1);
        }
        return new mysqli_result($GLOBALS['v']);
    }
    public function close(): bool { return true; }
}
parse_str($argv[2], $_GET);
require $argv[1];
