<?php
// HAProxy agent-check responder for policy least_load, run next to php-fpm in
// each app container (php /srv/app/agent.php).
//
// On each connection it answers "N%\n" with N the idle share in whole percent
// (HAProxy sets the server's weight to N% of its configured weight), as
// lbsim.model.policies.least_load.idle_percent does:
//   N = clamp(floor(max(min_idle, 1 - load) * 100 + 0.5), 1, 100)
// load (LBSIM_AGENT_METRIC):
//   workers  (active processes + listen queue) / total processes, from the
//            php-fpm status page (read with cgi-fcgi) on the pool's status
//            listener (pm.status_listen): answered while every worker is busy.
//            LBSIM_AGENT_STATUS=pool reads it through the pool's own listener
//            instead, as many real agents do: the status request waits behind
//            the queued requests, HAProxy's agent check times out and keeps a
//            full node's last weight, and the node keeps getting traffic (the
//            model's least_load option agent_status: pool). A pool worker
//            serves the request then, so it is not counted as active.
//   cpu      container CPU used since the previous reply / (cpus * elapsed),
//            from the cgroup (v1 cpuacct or v2 cpu.stat)
// Environment: LBSIM_AGENT_PORT (9777), LBSIM_AGENT_METRIC (workers),
// LBSIM_AGENT_MIN_IDLE (0.01), LBSIM_AGENT_STATUS (listener), LBSIM_FPM_ADDRESS
// (the status listener's or the pool's address, set by lbsim's compose file).

declare(strict_types=1);

function env(string $name, string $default): string
{
    $v = getenv($name);
    return ($v === false || $v === '') ? $default : $v;
}

function fpm_status(string $address): ?array
{
    $cmd = 'SCRIPT_NAME=/status SCRIPT_FILENAME=/status REQUEST_METHOD=GET QUERY_STRING=json '
        . 'cgi-fcgi -bind -connect ' . escapeshellarg($address) . ' 2>/dev/null';
    $out = shell_exec($cmd);
    if (!is_string($out)) {
        return null;
    }
    $pos = strpos($out, "\r\n\r\n");
    $json = json_decode($pos === false ? $out : substr($out, $pos + 4), true);
    return is_array($json) ? $json : null;
}

function workers_load(string $address, bool $throughPool): ?float
{
    $s = fpm_status($address);
    if ($s === null || empty($s['total processes'])) {
        return null;
    }
    // on the status listener its own process serves it, no worker of the pool;
    // through the pool one of the active processes is this request
    $active = $s['active processes'] - ($throughPool ? 1 : 0);
    return ($active + $s['listen queue']) / $s['total processes'];
}

/** @return array{0: float, 1: float} CPU seconds used by this cgroup, and its cores */
function cgroup_cpu(): array
{
    if (is_readable('/sys/fs/cgroup/cpu.stat')) { // cgroup v2
        preg_match('/usage_usec (\d+)/', (string)file_get_contents('/sys/fs/cgroup/cpu.stat'), $m);
        $used = ((float)($m[1] ?? 0)) / 1e6;
        $max = explode(' ', trim((string)@file_get_contents('/sys/fs/cgroup/cpu.max')));
        $cores = ($max[0] ?? 'max') === 'max' ? (float)(int)shell_exec('nproc')
            : (float)$max[0] / (float)($max[1] ?? 100000);
        return [$used, $cores];
    }
    $used = (float)@file_get_contents('/sys/fs/cgroup/cpuacct/cpuacct.usage') / 1e9;
    $quota = (float)@file_get_contents('/sys/fs/cgroup/cpu/cpu.cfs_quota_us');
    $period = (float)@file_get_contents('/sys/fs/cgroup/cpu/cpu.cfs_period_us');
    $cores = ($quota > 0 && $period > 0) ? $quota / $period : (float)(int)shell_exec('nproc');
    return [$used, $cores];
}

$port = (int)env('LBSIM_AGENT_PORT', '9777');
$metric = env('LBSIM_AGENT_METRIC', 'workers');
$minIdle = (float)env('LBSIM_AGENT_MIN_IDLE', '0.01');
$throughPool = env('LBSIM_AGENT_STATUS', 'listener') === 'pool';
$fpm = env('LBSIM_FPM_ADDRESS', $throughPool ? '127.0.0.1:9000' : '127.0.0.1:9001');

$server = stream_socket_server("tcp://0.0.0.0:$port", $errno, $errstr);
if ($server === false) {
    fwrite(STDERR, "lbsim agent: cannot listen on $port: $errstr\n");
    exit(1);
}
[$lastCpu, $cores] = cgroup_cpu();
$lastTime = microtime(true);
while (true) {
    $conn = @stream_socket_accept($server, -1);
    if ($conn === false) {
        continue;
    }
    if ($metric === 'cpu') {
        [$cpu, $cores] = cgroup_cpu();
        $now = microtime(true);
        $load = ($now > $lastTime && $cores > 0) ? ($cpu - $lastCpu) / ($cores * ($now - $lastTime)) : 0.0;
        [$lastCpu, $lastTime] = [$cpu, $now];
    } else {
        $load = workers_load($fpm, $throughPool);
    }
    if ($load === null) {
        $reply = "up\n"; // status unreadable: keep the configured weight
    } else {
        $idle = max($minIdle, 1.0 - $load);
        $reply = sprintf("%d%%\n", min(100, max(1, (int)floor($idle * 100.0 + 0.5))));
    }
    @fwrite($conn, $reply);
    fclose($conn);
}
