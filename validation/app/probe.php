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
//
// Visibility lag (&poll=1&max_wait=S, sync_wait=0 only): after each write the
// reader is read again and again until it shows the write or S seconds
// (default 0.5, at most 5) have passed since the write returned. The first
// read of each write is the one counted above; the answer adds "polls": one
// [stale_reads, last_stale_s, seen_s] per write, times (hrtime) from the
// write returning to the *sending* of the last read that missed it (null if
// the first read saw it) and of the first read that saw it (null: not within
// S), "max_wait_s", and "cut_short": true when the whole loop stopped at its
// budget of 60 s before n writes (lbsim.validation.visibility reads it).

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
$poll = (string)($_GET['poll'] ?? '0') === '1';
$maxWait = (float)($_GET['max_wait'] ?? 0.5);
$name = '/^[A-Za-z0-9_.-]{1,64}$/';
if ($n < 1 || $n > 100000 || !preg_match($name, $writer) || !preg_match($name, $reader)
    || ($syncWait !== '0' && $syncWait !== '1') || $key < 1
    || ($poll && ($syncWait !== '0' || !($maxWait > 0 && $maxWait <= 5)))) {
    probe_answer(400, ['error' => 'want n in 1..100000, writer and reader node names, '
        . 'sync_wait 0 or 1, key >= 1; poll=1 only with sync_wait=0 and max_wait in (0, 5]']);
}
$sync = (int)$syncWait;
$budgetNs = 60 * 1000000000;  // the whole poll loop (a PHP request must end)
$maxWaitNs = (int)($maxWait * 1e9);

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
$polls = [];
$cutShort = false;
$start = hrtime(true);
for ($i = 0; $i < $n; $i++) {
    if ($poll && hrtime(true) - $start > $budgetNs) {
        $cutShort = true;
        break;
    }
    try {
        $t = microtime(true);
        $w->query("UPDATE kv SET v = v + 1 WHERE id = $key");
        $writeTime += microtime(true) - $t;
        $returned = hrtime(true);
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
        $sent = hrtime(true);
        $seen = probe_value($r, $key);
        $reads[] = microtime(true) - $t;
        if ($seen < $expected) {
            $stale++;
        }
        if ($poll) {
            // read again until the reader shows the write (bounded by max_wait)
            $missed = 0;
            $lastMiss = null;
            while ($seen < $expected) {
                $missed++;
                $lastMiss = $sent;
                $sent = hrtime(true);
                if ($sent - $returned > $maxWaitNs) {
                    $sent = null;
                    break;
                }
                $seen = probe_value($r, $key);
            }
            $polls[] = [
                $missed,
                $lastMiss === null ? null : ($lastMiss - $returned) / 1e9,
                $sent === null ? null : ($sent - $returned) / 1e9,
            ];
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
] + ($poll ? ['polls' => $polls, 'max_wait_s' => $maxWait, 'cut_short' => $cutShort] : []));
