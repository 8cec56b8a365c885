<?php
/*
 * Seed the WordPress example: install WordPress, then deterministic content.
 * Runs inside an app container, as www-data, reading this file on stdin
 * (seed.sh does both steps):
 *
 *   docker exec -i -u www-data APP php -- install < seed.php
 *   docker exec -i -u www-data APP php -- content < seed.php
 *
 * install: wp_install() (wp-admin/includes/upgrade.php) unless installed:
 *          admin ADMIN_USER / ADMIN_PASSWORD, permalinks plain (/?p=ID),
 *          comments approved at once and no notification mail.
 * content: the users, categories, posts (ids FIRST_POST_ID..) and their
 *          comments, all drawn from one seeded generator, so every run makes
 *          the same site; what exists already is skipped (a post and its
 *          comments are one transaction), so a second run adds nothing.
 *          Then the search words' hit counts and a login cookie of
 *          COOKIE_USER, written to SEED_OUT (seed.json, cookie.txt,
 *          post-ids.txt, words.txt).
 *
 * Environment: SEED_HOST, the site's host as the balancer is asked for it
 * (localhost; it only goes into the posts' GUIDs), SEED_OUT (/tmp/lbsim-wp-seed).
 */

const ADMIN_USER = 'admin';
const ADMIN_PASSWORD = 'lbsim-admin';
const ADMIN_EMAIL = 'admin@example.com';
/** every seeded user's password */
const USER_PASSWORD = 'lbsim-user';
/** the subscriber whose login cookie the seed writes */
const COOKIE_USER = 'reader01';
/** how long the cookie is valid, seconds */
const COOKIE_LIFETIME = 30 * 86400;
const POSTS = 200;
/** the seeded posts get ids FIRST_POST_ID .. FIRST_POST_ID + POSTS - 1, on any database (Galera's auto-increment steps too) */
const FIRST_POST_ID = 101;
const READERS = 20;
const AUTHORS = 4;
const SEED = 20240614;
/** comment_agent of the seeded comments (the load generator's have their own) */
const SEED_AGENT = 'lbsim-seed';

/** search words => how many posts contain each (0: a search that finds nothing) */
const SEARCH_WORDS = [
    'xylophone' => 0, 'quokka' => 1, 'zither' => 2, 'tamarind' => 3, 'obsidian' => 5,
    'harpsichord' => 7, 'marmalade' => 10, 'nebula' => 12, 'origami' => 15, 'pelican' => 20,
    'saffron' => 25, 'glacier' => 30, 'juniper' => 40, 'lighthouse' => 50, 'walrus' => 60,
    'zeppelin' => 75, 'sycamore' => 100, 'vermilion' => 150, 'bamboo' => 200,
];

const FILLER = [
    'about', 'above', 'across', 'after', 'again', 'almost', 'along', 'always', 'among', 'answer',
    'apple', 'around', 'autumn', 'basket', 'before', 'behind', 'below', 'beside', 'better',
    'between', 'bicycle', 'blue', 'board', 'bottle', 'bread', 'bridge', 'bright', 'brown',
    'button', 'candle', 'carpet', 'castle', 'cheese', 'circle', 'cloud', 'coffee', 'copper',
    'corner', 'cotton', 'country', 'course', 'curtain', 'dinner', 'doctor', 'dream', 'during',
    'early', 'engine', 'evening', 'family', 'farmer', 'feather', 'field', 'finger', 'flower',
    'forest', 'garden', 'gentle', 'golden', 'green', 'hammer', 'happy', 'harbour', 'heavy',
    'hollow', 'honest', 'island', 'kettle', 'kitchen', 'ladder', 'lantern', 'letter', 'little',
    'market', 'meadow', 'middle', 'minute', 'morning', 'mountain', 'narrow', 'needle', 'never',
    'number', 'ocean', 'orange', 'paper', 'pencil', 'people', 'pepper', 'picture', 'pillow',
    'planet', 'pocket', 'quiet', 'rabbit', 'railway', 'ribbon', 'river', 'rocket', 'saddle',
    'school', 'season', 'shadow', 'silver', 'simple', 'sister', 'small', 'spring', 'station',
    'stone', 'summer', 'table', 'thunder', 'timber', 'tomato', 'travel', 'under', 'valley',
    'velvet', 'village', 'violet', 'wagon', 'water', 'weather', 'window', 'winter', 'wooden',
    'yellow', 'yesterday',
];
const CATEGORIES = ['Gardening', 'Travel', 'Cooking', 'Music', 'Science', 'Crafts', 'Sailing', 'Books'];
const FIRST_NAMES = ['Ada', 'Ben', 'Cora', 'Dan', 'Eva', 'Finn', 'Gwen', 'Hugo', 'Iris', 'Jon',
    'Kate', 'Liam', 'Mia', 'Noah', 'Olga', 'Paul', 'Rosa', 'Sam', 'Tess', 'Umar'];

function fail(string $message): void
{
    fwrite(STDERR, "seed.php: $message\n");
    exit(1);
}

$phase = $argv[1] ?? '';
if ($phase !== 'install' && $phase !== 'content') {
    fail("usage: php -- install|content < seed.php (not '$phase')");
}
foreach (SEARCH_WORDS as $word => $_) {
    foreach (FILLER as $filler) {
        if (str_contains($filler, $word) || str_contains($word, $filler)) {
            fail("filler word '$filler' and search word '$word' overlap");
        }
    }
}

// what a request through the balancer would carry (Debian's wp-config.php
// picks the config file by host; WordPress reads the others here and there)
$_SERVER['HTTP_HOST'] = getenv('SEED_HOST') ?: 'localhost';
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$_SERVER['REMOTE_ADDR'] = '127.0.0.1';
$out = getenv('SEED_OUT') ?: '/tmp/lbsim-wp-seed';

if ($phase === 'install') {
    define('WP_INSTALLING', true);
    require '/usr/share/wordpress/wp-load.php';
    // pluggable in upgrade.php: no "your new site" mail (no MTA here)
    function wp_new_blog_notification($blog_title, $blog_url, $user_id, $password)
    {
    }
    require_once ABSPATH . 'wp-admin/includes/upgrade.php';
    if (is_blog_installed()) {
        echo "WordPress is installed already\n";
    } else {
        $result = wp_install('lbsim WordPress example', ADMIN_USER, ADMIN_EMAIL, true, '',
            wp_slash(ADMIN_PASSWORD));
        echo "installed WordPress {$GLOBALS['wp_version']}: admin user " . ADMIN_USER
            . " (id {$result['user_id']})\n";
    }
    $options = [
        'blogdescription' => 'A real PHP application for lbsim',
        'permalink_structure' => '',        // plain links: /?p=ID
        'comment_moderation' => '0',        // a comment appears at once ...
        'comment_previously_approved' => '0', // ... also from a first-time commenter
        'comments_notify' => '0',           // no mail per comment
        'moderation_notify' => '0',
        'close_comments_for_old_posts' => '0',
        'default_comment_status' => 'open',
        'page_comments' => '0',             // every comment on the post's page
        'posts_per_page' => '10',
    ];
    foreach ($options as $name => $value) {
        update_option($name, $value);
    }
    exit(0);
}

require '/usr/share/wordpress/wp-load.php';
if (!is_blog_installed()) {
    fail('WordPress is not installed: run the install step first');
}
global $wpdb;
mt_srand(SEED, MT_RAND_MT19937);

function pick(array $items)
{
    return $items[mt_rand(0, count($items) - 1)];
}

function sentence(int $words): string
{
    $w = [];
    for ($i = 0; $i < $words; $i++) {
        $w[] = pick(FILLER);
    }
    return ucfirst(implode(' ', $w)) . '.';
}

/** a paragraph as a list of words (a search word goes in between them) */
function paragraph_words(): array
{
    $words = [];
    $n = mt_rand(30, 90);
    while (count($words) < $n) {
        $words = array_merge($words, explode(' ', sentence(mt_rand(6, 14))));
    }
    return $words;
}

/** paragraphs per post: mostly short, some long (1..40) */
function paragraph_count(): int
{
    $r = mt_rand(1, 100);
    if ($r <= 50) {
        return mt_rand(1, 3);
    }
    if ($r <= 85) {
        return mt_rand(4, 10);
    }
    return mt_rand(11, 40);
}

function in_transaction(callable $work): void
{
    global $wpdb;
    $wpdb->query('START TRANSACTION');
    try {
        $work();
    } catch (Throwable $e) {
        $wpdb->query('ROLLBACK');
        throw $e;
    }
    if ($wpdb->query('COMMIT') === false) {
        fail('COMMIT failed: ' . $wpdb->last_error);
    }
}

wp_set_current_user(get_user_by('login', ADMIN_USER)->ID);
wp_defer_term_counting(true);
wp_defer_comment_counting(true);

// ------------------------------------------------------------------ users
$users = [];  // login => [id, display name, email]
$new_users = 0;
$specs = [];
for ($i = 1; $i <= AUTHORS; $i++) {
    $specs[] = [sprintf('author%02d', $i), 'author'];
}
$specs[] = ['editor01', 'editor'];
for ($i = 1; $i <= READERS; $i++) {
    $specs[] = [sprintf('reader%02d', $i), 'subscriber'];
}
in_transaction(function () use ($specs, &$users, &$new_users) {
    foreach ($specs as $k => [$login, $role]) {
        $first = FIRST_NAMES[$k % count(FIRST_NAMES)];
        $display = "$first " . ucfirst(preg_replace('/\d+$/', '', $login)) . ' ' . substr($login, -2);
        $email = "$login@example.com";
        $user = get_user_by('login', $login);
        if ($user === false) {
            $id = wp_insert_user([
                'user_login' => $login, 'user_pass' => USER_PASSWORD, 'user_email' => $email,
                'display_name' => $display, 'first_name' => $first, 'role' => $role,
            ]);
            if (is_wp_error($id)) {
                throw new RuntimeException("user $login: " . $id->get_error_message());
            }
            $new_users++;
        } else {
            $id = $user->ID;
        }
        $users[$login] = [$id, $display, $email];
    }
});
$authors = array_values(array_filter(array_keys($users), fn($l) => !str_starts_with($l, 'reader')));
$author_ids = array_merge([get_user_by('login', ADMIN_USER)->ID], array_map(fn($l) => $users[$l][0], $authors));

$category_ids = [];
foreach (CATEGORIES as $name) {
    $term = term_exists($name, 'category');
    if (!$term) {
        $term = wp_insert_term($name, 'category');
        if (is_wp_error($term)) {
            fail("category $name: " . $term->get_error_message());
        }
    }
    $category_ids[] = (int)$term['term_id'];
}

// --------------------------------------------------- which posts get which word
$words_of = array_fill(0, POSTS, []);
foreach (SEARCH_WORDS as $word => $count) {
    $order = range(0, POSTS - 1);
    for ($i = POSTS - 1; $i > 0; $i--) {  // Fisher-Yates on the seeded generator
        $j = mt_rand(0, $i);
        [$order[$i], $order[$j]] = [$order[$j], $order[$i]];
    }
    foreach (array_slice($order, 0, $count) as $p) {
        $words_of[$p][] = $word;
    }
}

// ------------------------------------------------------ posts and comments
$seeded_ids = array_flip(array_map('intval', $wpdb->get_col($wpdb->prepare(
    "SELECT ID FROM {$wpdb->posts} WHERE ID BETWEEN %d AND %d",
    FIRST_POST_ID, FIRST_POST_ID + POSTS - 1
))));
$readers = array_values(array_filter(array_keys($users), fn($l) => str_starts_with($l, 'reader')));
$new_posts = 0;
$new_comments = 0;
$total_comments = 0;
$post_ids = [];
$base = strtotime('2023-01-02 08:00:00 UTC');
for ($p = 0; $p < POSTS; $p++) {
    $id = FIRST_POST_ID + $p;
    $post_ids[] = $id;
    // draw everything, existing or not, so the generator's stream stays the same
    $paragraphs = [];
    $n_paragraphs = paragraph_count();
    for ($k = 0; $k < $n_paragraphs; $k++) {
        $paragraphs[] = paragraph_words();
    }
    foreach ($words_of[$p] as $word) {
        $k = mt_rand(0, $n_paragraphs - 1);
        array_splice($paragraphs[$k], mt_rand(1, count($paragraphs[$k]) - 1), 0, [$word]);
    }
    $content = implode("\n\n", array_map(
        fn($words) => "<!-- wp:paragraph -->\n<p>" . implode(' ', $words) . "</p>\n<!-- /wp:paragraph -->",
        $paragraphs
    ));
    $title = sprintf('Seeded post %03d: %s %s %s', $p + 1, ucfirst(pick(FILLER)), pick(FILLER), pick(FILLER));
    $date = $base + $p * 86400 + mt_rand(0, 36000);
    $author = pick($author_ids);
    $category = pick($category_ids);
    // mostly a few comments, every tenth post a long thread: 1000+ in all
    $n_comments = ($p % 10 === 9) ? 40 : mt_rand(0, 8);
    $comments = [];
    for ($c = 0; $c < $n_comments; $c++) {
        $text = [];
        for ($s = mt_rand(1, 4); $s > 0; $s--) {
            $text[] = sentence(mt_rand(5, 15));
        }
        $registered = mt_rand(0, 1) === 1;
        $reader = pick($readers);
        $visitor = mt_rand(1, 500);
        $comments[] = [
            'text' => implode(' ', $text),
            'user' => $registered ? $reader : null,
            'visitor' => $visitor,
            'date' => $date + 3600 * ($c + 1) + mt_rand(0, 3000),
            'parent' => ($c > 0 && mt_rand(1, 5) === 1) ? mt_rand(0, $c - 1) : null,
        ];
    }
    $total_comments += $n_comments;
    if (isset($seeded_ids[$id])) {
        continue;
    }
    in_transaction(function () use ($id, $title, $content, $date, $author, $category, $comments, $users, &$new_comments) {
        $got = wp_insert_post([
            'import_id' => $id, 'post_title' => $title, 'post_content' => $content,
            'post_status' => 'publish', 'post_type' => 'post', 'post_author' => $author,
            'post_date' => gmdate('Y-m-d H:i:s', $date), 'post_category' => [$category],
            'comment_status' => 'open', 'ping_status' => 'closed',
        ], true);
        if (is_wp_error($got) || $got !== $id) {
            throw new RuntimeException("post $id: " . (is_wp_error($got) ? $got->get_error_message() : "got id $got"));
        }
        $comment_ids = [];
        foreach ($comments as $c) {
            if ($c['user'] !== null) {
                [$uid, $name, $email] = $users[$c['user']];
            } else {
                [$uid, $name, $email] = [0, "Visitor {$c['visitor']}", "visitor{$c['visitor']}@example.com"];
            }
            $cid = wp_insert_comment([
                'comment_post_ID' => $id, 'comment_author' => $name, 'comment_author_email' => $email,
                'comment_author_IP' => '192.0.2.' . ($c['visitor'] % 250 + 1),
                'comment_content' => $c['text'], 'comment_approved' => 1, 'user_id' => $uid,
                'comment_parent' => $c['parent'] === null ? 0 : $comment_ids[$c['parent']],
                'comment_date' => gmdate('Y-m-d H:i:s', $c['date']),
                'comment_date_gmt' => gmdate('Y-m-d H:i:s', $c['date']),
                'comment_agent' => SEED_AGENT,
            ]);
            if ($cid === false) {
                throw new RuntimeException("a comment on post $id: " . $GLOBALS['wpdb']->last_error);
            }
            $comment_ids[] = $cid;
            $new_comments++;
        }
    });
    $new_posts++;
}
wp_defer_term_counting(false);
wp_defer_comment_counting(false);

// ------------------------------------------------------------------ report
$found = [];
foreach (SEARCH_WORDS as $word => $_) {
    $q = new WP_Query(['s' => $word, 'post_type' => 'any', 'post_status' => 'publish',
        'fields' => 'ids', 'posts_per_page' => 1]);
    $found[$word] = (int)$q->found_posts;
}
$seeded_comments = (int)$wpdb->get_var($wpdb->prepare(
    "SELECT COUNT(*) FROM {$wpdb->comments} WHERE comment_agent = %s", SEED_AGENT));
if ($seeded_comments !== $total_comments) {
    fail("$seeded_comments seeded comments in the database, $total_comments drawn");
}

// the login cookie: one session, kept across runs while it has a week left
[$reader_id, $reader_name, $reader_email] = $users[COOKIE_USER];
$sessions = WP_Session_Tokens::get_instance($reader_id);
$token = (string)get_option('lbsim_seed_cookie_token', '');
$session = $token === '' ? null : $sessions->get($token);
if ($session === null || $session['expiration'] < time() + 7 * 86400) {
    $expiration = time() + COOKIE_LIFETIME;
    $token = $sessions->create($expiration);
    update_option('lbsim_seed_cookie_token', $token, false);
} else {
    $expiration = $session['expiration'];
}
$cookie = AUTH_COOKIE . '=' . rawurlencode(wp_generate_auth_cookie($reader_id, $expiration, 'auth', $token))
    . '; ' . LOGGED_IN_COOKIE . '=' . rawurlencode(wp_generate_auth_cookie($reader_id, $expiration, 'logged_in', $token));

$summary = [
    'site' => ['admin_user' => ADMIN_USER, 'admin_password' => ADMIN_PASSWORD, 'user_password' => USER_PASSWORD,
        'wordpress' => $GLOBALS['wp_version']],
    'posts' => ['first_id' => FIRST_POST_ID, 'last_id' => FIRST_POST_ID + POSTS - 1, 'count' => POSTS, 'new' => $new_posts],
    'comments' => ['seeded' => $seeded_comments, 'new' => $new_comments,
        'in_database' => (int)$wpdb->get_var("SELECT COUNT(*) FROM {$wpdb->comments}")],
    'users' => ['count' => count($users) + 1, 'new' => $new_users, 'logins' => array_merge([ADMIN_USER], array_keys($users))],
    'search_words' => $found,
    'cookie' => ['user' => COOKIE_USER, 'user_id' => $reader_id, 'display_name' => $reader_name,
        'expires' => gmdate('Y-m-d\TH:i:s\Z', $expiration), 'file' => 'cookie.txt'],
];
if (!is_dir($out) && !mkdir($out, 0755, true)) {
    fail("cannot create $out");
}
file_put_contents("$out/seed.json", json_encode($summary, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES) . "\n");
file_put_contents("$out/cookie.txt", $cookie . "\n");
file_put_contents("$out/post-ids.txt", implode("\n", $post_ids) . "\n");
file_put_contents("$out/words.txt", implode('', array_map(fn($w, $n) => "$w $n\n", array_keys($found), $found)));

printf("posts: ids %d..%d (%d, %d new)\n", FIRST_POST_ID, FIRST_POST_ID + POSTS - 1, POSTS, $new_posts);
printf("comments: %d seeded (%d new), %d in all\n", $seeded_comments, $new_comments, $summary['comments']['in_database']);
printf("users: %d (%d new): %s, password %s (%s: %s)\n", count($users) + 1, $new_users,
    implode(' ', array_keys($users)), USER_PASSWORD, ADMIN_USER, ADMIN_PASSWORD);
echo "search words (posts found): " . implode(' ', array_map(fn($w, $n) => "$w=$n", array_keys($found), $found)) . "\n";
printf("login cookie of %s (%s), valid until %s\n", COOKIE_USER, $reader_name, $summary['cookie']['expires']);
