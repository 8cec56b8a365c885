<?php
/*
 * WordPress configuration of the lbsim example stack. Debian's
 * /usr/share/wordpress/wp-config.php reads /etc/wordpress/config-<host>.php
 * and, for any other host, this file; it then sets ABSPATH, WP_CONTENT_DIR
 * (/var/lib/wordpress/wp-content) and loads wp-settings.php.
 *
 * The database comes from the environment (the pool keeps it: clear_env = no):
 *   WORDPRESS_DB_HOST      db       (galera: db1 for app1, db2 for app2)
 *   WORDPRESS_DB_NAME      lbsim    (the schema the lbsim MariaDB image creates)
 *   WORDPRESS_DB_USER      wordpress
 *   WORDPRESS_DB_PASSWORD  wordpress
 *   WORDPRESS_SALT         a phrase the keys and salts are derived from
 *
 * A test stack, never for a public network: the keys and salts are derived
 * from a fixed phrase, so every app node accepts the login cookie the seed
 * wrote and the cookie outlives a restart.
 */

function lbsim_env(string $name, string $default): string
{
    $value = getenv($name);
    return ($value === false || $value === '') ? $default : $value;
}

define('DB_NAME', lbsim_env('WORDPRESS_DB_NAME', 'lbsim'));
define('DB_USER', lbsim_env('WORDPRESS_DB_USER', 'wordpress'));
define('DB_PASSWORD', lbsim_env('WORDPRESS_DB_PASSWORD', 'wordpress'));
define('DB_HOST', lbsim_env('WORDPRESS_DB_HOST', 'db'));
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
$table_prefix = 'wp_';

// The site's address is the one it was asked for: the balancer is published on
// whatever port the stack was started with (18200, the live test's 18210), and a
// fixed home URL would make WordPress redirect or link to another port.
$lbsim_host = preg_replace('/[^A-Za-z0-9.:\[\]-]/', '', $_SERVER['HTTP_HOST'] ?? 'localhost');
define('WP_HOME', 'http://' . $lbsim_host);
define('WP_SITEURL', 'http://' . $lbsim_host);
// ... so the cookie names cannot hang on it (WordPress takes md5(siteurl))
define('COOKIEHASH', md5('lbsim-example-wordpress'));

$lbsim_salt = lbsim_env('WORDPRESS_SALT', 'lbsim example stack: not a secret');
foreach (['AUTH', 'SECURE_AUTH', 'LOGGED_IN', 'NONCE'] as $lbsim_kind) {
    define("{$lbsim_kind}_KEY", hash('sha256', "$lbsim_salt $lbsim_kind key"));
    define("{$lbsim_kind}_SALT", hash('sha256', "$lbsim_salt $lbsim_kind salt"));
}

// Nothing but the requests sent: no cron run spawned by a page view, no update
// checks against api.wordpress.org (no network here: each would wait for a
// timeout), no automatic updates.
define('DISABLE_WP_CRON', true);
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_ALLOW_MULTISITE', false);
define('WP_DEBUG', false);
