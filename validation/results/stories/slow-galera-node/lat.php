<?php
$host = $argv[1]; $n = (int)$argv[2];
$db = new mysqli($host, getenv('DBU') ?: 'lbsim', getenv('DBP') ?: 'lbsim', 'lbsim');
$t = [];
for ($i = 0; $i < $n; $i++) {
  usleep(random_int(5000, 25000));
  $a = hrtime(true);
  $db->query("UPDATE probe SET v = v + 1 WHERE id = 1");
  $t[] = (hrtime(true) - $a) / 1e6;
}
sort($t);
$m = array_sum($t) / count($t);
printf("n=%d mean=%.2f p10=%.2f p50=%.2f p90=%.2f max=%.2f\n", $n, $m, $t[(int)($n*0.1)], $t[(int)($n*0.5)], $t[(int)($n*0.9)], $t[$n-1]);
