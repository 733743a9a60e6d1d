// Command tlsserver is the e2e tests' TLS server, run as a swarm task: it
// reads a certificate and its key from files once, at start, as servers
// do, and answers every HTTPS request on -addr with "ok". The tests dial it
// and check the certificate it serves against the CA the task was given.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8443", "address to serve on")
	certFile := flag.String("cert", "/run/secrets/tls_cert", "PEM certificate")
	keyFile := flag.String("key", "/run/secrets/tls_key", "PEM key of the certificate")
	flag.Parse()
	pair, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		fmt.Println("fail:", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Addr:              *addr,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}},
		ReadHeaderTimeout: 5 * time.Second,
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }),
	}
	fmt.Println("serving on", *addr)
	if err := srv.ListenAndServeTLS("", ""); err != nil {
		fmt.Println("fail:", err)
		os.Exit(1)
	}
}
