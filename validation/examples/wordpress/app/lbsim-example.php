<?php
/*
 * Plugin Name: lbsim example stack
 * Description: Comment flood protection off (why below). Must-use: always on.
 *
 * WordPress refuses a comment from an address (or e-mail) that commented in
 * the last 15 seconds ("You are posting comments too quickly"). Every request
 * of a load test reaches WordPress through the balancer: without an
 * X-Forwarded-For header all of them come from the balancer's one address,
 * and even with one a client posts more often than that; the comment class
 * would be refused after its first request. So the flood check is off here,
 * both the legacy hook and its filter.
 *
 * Duplicate comments are still refused: the load generator sends unique text.
 */

remove_action('check_comment_flood', 'check_comment_flood_db', 10);
add_filter('wp_is_comment_flood', '__return_false', PHP_INT_MAX);
