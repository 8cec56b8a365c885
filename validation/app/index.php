<?php
// lbsim work app: one endpoint that performs a request class's work, as the
// replayer describes it in the query string, and reports server-side timings.
//
//   GET /?class=checkout&units=1500&q=r17:2000,w3+9:3000
//
//   class  request class name (echoed, for logs)
//   units  CPU work units to burn in PHP (a fixed computation, see work())
//   q      queries in order, comma-separated: <kind><keys>:<db_units>
//          kind r = SELECT by primary key, w = autocommit UPDATE of those rows;
//          keys = row ids joined by '+'; db_units = BENCHMARK() iterations the
//          server evaluates per row (CPU work inside MariaDB, under the row
//          lock for a write)
//
// Other paths: /healthz (no database), /probe (the Galera stale-read probe, probe.php).
//
// Response headers (times in seconds):
//   X-Lbsim-Node      this app node (LBSIM_NODE)
//   X-Lbsim-Class     the class
//   X-Lbsim-Cpu       CPU time of this request (getrusage user+sys delta)
//   X-Lbsim-Work      CPU time of the work loop alone
//   X-Lbsim-Db        wall time in the database (connect + queries)
//   X-Lbsim-Connect   wall time connecting
//   X-Lbsim-Wall      wall time from php-fpm accepting the request to the end
//   X-Lbsim-Queue     php-fpm accept → script start (REQUEST_TIME_FLOAT)
//   X-Lbsim-Retries   1213 retries done by the app
//   X-Lbsim-Db-Error  MySQL error code that failed the request (1040, 1205, 1213, ...)
// A failed request answers HTTP 500 with X-Lbsim-Db-Error set.

declare(strict_types=1);

const UNIT_ITERATIONS = 1000;

$t0 = microtime(true);
$r0 = getrusage();

function cpu_seconds(array $r): float
{
    return $r['ru_utime.tv_sec'] + $r['ru_utime.tv_usec'] / 1e6
        + $r['ru_stime.tv_sec'] + $r['ru_stime.tv_usec'] / 1e6;
}

/** A fixed amount of real computation: UNIT_ITERATIONS steps of an integer hash per unit. */
function work(int $units): int
{
    $x = 2166136261;
    $n = $units * UNIT_ITERATIONS;
    for ($i = 0; $i < $n; $i++) {
        $x = (($x ^ ($i & 0xff)) * 16777619) & 0xffffffff;
    }
    return $x;
}

/** @return list<array{kind: string, keys: list<int>, units: int}> */
function parse_queries(string $spec): array
{
    $out = [];
    if ($spec === '') {
        return $out;
    }
    foreach (explode(',', $spec) as $item) {
        if (!preg_match('/^([rw])([0-9]+(?:\+[0-9]+)*)(?::([0-9]+))?$/', $item, $m)) {
            throw new InvalidArgumentException("bad query spec '$item'");
        }
        $keys = array_map('intval', explode('+', $m[2]));
        $out[] = ['kind' => $m[1], 'keys' => $keys, 'units' => isset($m[3]) ? (int)$m[3] : 0];
    }
    return $out;
}

function env(string $name, string $default): string
{
    $v = getenv($name);
    return ($v === false || $v === '') ? $default : $v;
}

final class Db
{
    /** @var array<string, mysqli> */
    private array $conns = [];
    public float $time = 0.0;
    public float $connectTime = 0.0;
    public int $retries = 0;

    public function conn(string $role): mysqli
    {
        $host = env($role === 'w' ? 'LBSIM_DB_WRITE_HOST' : 'LBSIM_DB_READ_HOST', 'db1');
        if (isset($this->conns[$host])) {
            return $this->conns[$host];
        }
        $persistent = env('LBSIM_DB_PERSISTENT', '0') === '1';
        $t = microtime(true);
        try {
            $c = new mysqli(
                ($persistent ? 'p:' : '') . $host,
                env('LBSIM_DB_USER', 'lbsim'),
                env('LBSIM_DB_PASSWORD', 'lbsim'),
                'lbsim',
                (int)env('LBSIM_DB_PORT', '3306')
            );
        } finally {
            $dt = microtime(true) - $t;
            $this->connectTime += $dt;
            $this->time += $dt;
        }
        return $this->conns[$host] = $c;
    }

    /** Run one query; a 1213 (deadlock / certification conflict) is retried LBSIM_DB_RETRIES times. */
    public function run(array $q): int
    {
        $ids = implode(',', $q['keys']);
        $units = $q['units'];
        if ($q['kind'] === 'r') {
            $sql = "SELECT id, v, BENCHMARK($units, CRC32(pad)) FROM kv WHERE id IN ($ids)";
        } else {
            $sql = "UPDATE kv SET v = v + 1 + BENCHMARK($units, CRC32(pad)) WHERE id IN ($ids)";
        }
        $maxRetries = (int)env('LBSIM_DB_RETRIES', '0');
        $conn = $this->conn($q['kind']);
        for ($attempt = 0;; $attempt++) {
            $t = microtime(true);
            try {
                $res = $conn->query($sql);
                $rows = $res instanceof mysqli_result ? $res->num_rows : $conn->affected_rows;
                if ($res instanceof mysqli_result) {
                    $res->free();
                }
                return (int)$rows;
            } catch (mysqli_sql_exception $e) {
                if ($e->getCode() === 1213 && $attempt < $maxRetries) {
                    $this->retries++;
                    continue;
                }
                throw $e;
            } finally {
                $this->time += microtime(true) - $t;
            }
        }
    }

    public function close(): void
    {
        if (env('LBSIM_DB_PERSISTENT', '0') !== '1') {
            foreach ($this->conns as $c) {
                $c->close();
            }
        }
        $this->conns = [];
    }
}

function finish(int $status, string $body, array $headers): never
{
    global $t0, $r0;
    $r1 = getrusage();
    http_response_code($status);
    header('Content-Type: text/plain');
    header('Cache-Control: no-store');
    header('X-Lbsim-Node: ' . env('LBSIM_NODE', gethostname() ?: 'app'));
    header(sprintf('X-Lbsim-Cpu: %.6f', cpu_seconds($r1) - cpu_seconds($r0)));
    $start = (float)($_SERVER['REQUEST_TIME_FLOAT'] ?? $t0);
    header(sprintf('X-Lbsim-Wall: %.6f', microtime(true) - $start));
    header(sprintf('X-Lbsim-Queue: %.6f', max(0.0, $t0 - $start)));
    foreach ($headers as $k => $v) {
        header("X-Lbsim-$k: $v");
    }
    echo $body;
    exit;
}

$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';
if ($path === '/healthz') {
    finish(200, "ok\n", []);
}
if ($path === '/probe') {
    require __DIR__ . '/probe.php';  // the Galera stale-read probe (answers and exits)
}

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
$class = preg_replace('/[^A-Za-z0-9_.-]/', '', (string)($_GET['class'] ?? '')) ?? '';
$units = max(0, (int)($_GET['units'] ?? 0));
try {
    $queries = parse_queries((string)($_GET['q'] ?? ''));
} catch (InvalidArgumentException $e) {
    finish(400, $e->getMessage() . "\n", ['Class' => $class]);
}

$headers = ['Class' => $class];
// like the model: the CPU work in equal bursts before each query and after the last
$bursts = count($queries) + 1;
$workCpu = 0.0;
$checksum = 0;
$burst = function (int $i) use ($units, $bursts, &$workCpu, &$checksum): void {
    $n = intdiv($units, $bursts) + ($i < $units % $bursts ? 1 : 0);
    $rw0 = getrusage();
    $checksum ^= work($n);
    $workCpu += cpu_seconds(getrusage()) - cpu_seconds($rw0);
};

$db = new Db();
$status = 200;
$rows = 0;
try {
    foreach ($queries as $i => $q) {
        $burst($i);
        $rows += $db->run($q);
    }
    $burst(count($queries));
} catch (mysqli_sql_exception $e) {
    $status = 500;
    $headers['Db-Error'] = (string)$e->getCode();
    error_log(sprintf('lbsim %s: MySQL error %d: %s', $class, $e->getCode(), $e->getMessage()));
} finally {
    $db->close();
}
$headers['Work'] = sprintf('%.6f', $workCpu);
$headers['Db'] = sprintf('%.6f', $db->time);
$headers['Connect'] = sprintf('%.6f', $db->connectTime);
$headers['Retries'] = (string)$db->retries;
finish($status, "class=$class units=$units rows=$rows checksum=$checksum\n", $headers);
