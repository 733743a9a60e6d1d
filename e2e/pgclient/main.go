// Command pgclient is the e2e tests' database client, run as a swarm task:
// it reads a PostgreSQL URL from a secret file (or, as the official
// postgres image takes them, a user and a password from two files, with
// -user-file, -password-file and -addr) and logs in every -every,
// printing one line per try: "ok <user>" or "fail <user>: <reason>". The
// tests read those lines to tell whether the credentials Vault issued stay
// valid while the task runs. It never prints the password.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	file := flag.String("secret", "/run/secrets/db", "file holding a postgres:// URL")
	every := flag.Duration("every", 2*time.Second, "time between logins")
	userFile := flag.String("user-file", "", "file holding the user (with -password-file and -addr, in place of -secret)")
	passwordFile := flag.String("password-file", "", "file holding the user's password")
	addr := flag.String("addr", "", "host:port of the database, with -user-file")
	flag.Parse()
	url := "postgres://" + *addr + "/postgres?sslmode=disable"
	if *userFile == "" {
		raw, err := os.ReadFile(*file)
		if err != nil {
			fmt.Println("fail -:", err)
			os.Exit(1)
		}
		url = strings.TrimSpace(string(raw))
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// The parse error could quote the URL, password included.
		fmt.Println("fail -: the secret is not a PostgreSQL URL")
		os.Exit(1)
	}
	if *userFile != "" {
		user, uerr := os.ReadFile(*userFile)
		pw, perr := os.ReadFile(*passwordFile)
		if uerr != nil || perr != nil {
			fmt.Println("fail -: cannot read the user and password files")
			os.Exit(1)
		}
		cfg.User, cfg.Password = string(user), string(pw)
	}
	for {
		try(cfg)
		time.Sleep(*every)
	}
}

// try logs in afresh and runs a query: a new session is what a password
// that expired or a role that was dropped refuses.
func try(cfg *pgx.ConnConfig) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		_, err = conn.Exec(ctx, "select 1")
		conn.Close(ctx)
	}
	if err != nil {
		msg := strings.ReplaceAll(err.Error(), cfg.Password, "<hidden>")
		fmt.Printf("fail %s: %s\n", cfg.User, msg)
		return
	}
	fmt.Printf("ok %s\n", cfg.User)
}
