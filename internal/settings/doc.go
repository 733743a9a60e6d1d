// Package settings is the plugin's one table of settings: for each
// environment variable `docker plugin set` can change, its name, its
// default, how it is parsed and checked, and one line of help.
//
// The plugin loads the whole table at start ([Load]); `swarmvault check`
// loads the few it shares with the plugin ([LoadOnly]), through the same
// parsers, so that a value of those the plugin would refuse is refused by
// the check with the same sentence. plugin/config.json's env list and the docs'
// settings table are generated from [Table] (make settings) and a test
// fails when either differs from it.
package settings
