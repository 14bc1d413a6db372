package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/weir-dev/weir/pipe"
)

func TestSASL(t *testing.T) {
	_, addr := broker(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "weir", "secret"))
	t.Setenv("WEIR_TEST_KAFKA_PASSWORD", "secret")
	c := openConn(t, params(addr, "sasl.mechanism", "scram-sha-256", "sasl.username", "weir", "sasl.password", "${WEIR_TEST_KAFKA_PASSWORD}"))
	es := events(t, 0, 2)
	defer release(es)
	if err := c.Send(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	c.Close()
	bad := &Connector{}
	err := bad.Open(context.Background(), &pipe.Env{Pipe: "p", Params: params(addr, "sasl.mechanism", "scram-sha-256",
		"sasl.username", "weir", "sasl.password", "wrong", "timeout", "2s")})
	if err == nil {
		bad.Close()
		t.Fatal("a wrong password opened")
	}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weir test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	_, addr := broker(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}))
	c := openConn(t, params(addr, "tls.enable", "true", "tls.ca-file", ca))
	es := events(t, 0, 2)
	defer release(es)
	if err := c.Send(context.Background(), es); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// without the CA the broker's certificate is not trusted
	bad := &Connector{}
	if err := bad.Open(context.Background(), &pipe.Env{Pipe: "p", Params: params(addr, "tls.enable", "true", "timeout", "2s")}); err == nil {
		bad.Close()
		t.Fatal("an untrusted certificate was accepted")
	}
}
