<?php
// Stale-read probe for Galera (required by index.php for the path /probe).
//
//   GET /probe?n=200&writer=db1&reader=db2&sync_wait=0|1&key=K
//
// Connects straight to the writer and the reader node (service names of the
// Galera nodes; user/password from LBSIM_DB_USER / LBSIM_DB_PASSWORD, database
// lbsim, table kv(id, v, pad)). Reads the row's value once on the writer, then
// n times: an autocommit UPDATE kv SET v = v + 1 WHERE id = K on the writer,
// and at once SELECT v ... on the reader (after SET SESSION wsrep_sync_wait =
// sync_wait on that connection). The probe is the only writer of row K, so
// the i-th write leaves v = v0 + i; a read returning less is stale. Each
// read-after-write is timed (the SELECT alone, wait for causality included).
//
// Answer (JSON): {n, stale, stale_fraction, sync_wait, mean_read_s,
// p95_read_s, mean_write_s, errors, writer, reader, key}; stale_fraction =
// stale / reads answered. A statement that fails counts in errors (a failed
// write is not followed by a read). A connection that cannot be made answers
// 502 with {"error": ...}.

declare(strict_types=1);

function probe_answer(int $status, array $body): never
{
    http_response_code($status);
    header('Content-Type: application/json');
    header('Cache-Control: no-store');
    echo json_encode($body, JSON_PRESERVE_ZERO_FRACTION), "\n";
    exit;
}

function probe_env(string $name, string $default): string
{
    $v = getenv($name);
    return ($v === false || $v === '') ? $default : $v;
}

function probe_connect(string $host): mysqli
{
    return new mysqli(
        $host,
        probe_env('LBSIM_DB_USER', 'lbsim'),
        probe_env('LBSIM_DB_PASSWORD', 'lbsim'),
        'lbsim',
        (int)probe_env('LBSIM_DB_PORT', '3306')
    );
}

function probe_value(mysqli $c, int $key): int
{
    $res = $c->query("SELECT v FROM kv WHERE id = $key");
    $row = $res instanceof mysqli_result ? $res->fetch_row() : null;
    if ($res instanceof mysqli_result) {
        $res->free();
    }
    if ($row === null) {
        throw new RuntimeException("row $key does not exist in lbsim.kv");
    }
    return (int)$row[0];
}

$n = (int)($_GET['n'] ?? 200);
$writer = (string)($_GET['writer'] ?? 'db1');
$reader = (string)($_GET['reader'] ?? 'db2');
$syncWait = (string)($_GET['sync_wait'] ?? '0');
$key = (int)($_GET['key'] ?? 1);
$name = '/^[A-Za-z0-9_.-]{1,64}$/';
if ($n < 1 || $n > 100000 || !preg_match($name, $writer) || !preg_match($name, $reader)
    || ($syncWait !== '0' && $syncWait !== '1') || $key < 1) {
    probe_answer(400, ['error' => 'want n in 1..100000, writer and reader node names, '
        . 'sync_wait 0 or 1, key >= 1']);
}
$sync = (int)$syncWait;

mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
try {
    $w = probe_connect($writer);
    $r = probe_connect($reader);
    $r->query("SET SESSION wsrep_sync_wait = $sync");
    $expected = probe_value($w, $key);
} catch (Throwable $e) {
    probe_answer(502, ['error' => sprintf('%s (%d)', $e->getMessage(), $e->getCode())]);
}

$stale = 0;
$errors = 0;
$reads = [];
$writeTime = 0.0;
$writes = 0;
for ($i = 0; $i < $n; $i++) {
    try {
        $t = microtime(true);
        $w->query("UPDATE kv SET v = v + 1 WHERE id = $key");
        $writeTime += microtime(true) - $t;
        $writes++;
        $expected++;
    } catch (mysqli_sql_exception $e) {
        $errors++;
        // the write may or may not have happened: learn the value again
        try {
            $expected = probe_value($w, $key);
        } catch (Throwable $e2) {
            probe_answer(502, ['error' => 'lost the writer: ' . $e2->getMessage()]);
        }
        continue;
    }
    try {
        $t = microtime(true);
        $seen = probe_value($r, $key);
        $reads[] = microtime(true) - $t;
        if ($seen < $expected) {
            $stale++;
        }
    } catch (mysqli_sql_exception $e) {
        $errors++;
    }
}
$w->close();
$r->close();

sort($reads);
$m = count($reads);
probe_answer(200, [
    'n' => $n,
    'stale' => $stale,
    'stale_fraction' => $m > 0 ? $stale / $m : null,
    'sync_wait' => $sync,
    'mean_read_s' => $m > 0 ? array_sum($reads) / $m : null,
    'p95_read_s' => $m > 0 ? $reads[min($m - 1, (int)ceil(0.95 * $m) - 1)] : null,
    'mean_write_s' => $writes > 0 ? $writeTime / $writes : null,
    'errors' => $errors,
    'writer' => $writer,
    'reader' => $reader,
    'key' => $key,
]);
