package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/weir-dev/weir/pipe"
)

// Delivery guarantees (the delivery parameter).
const (
	AtLeastOnce = "at-least-once"
	ExactlyOnce = "exactly-once"
)

// Message formats (the format parameter).
const (
	FormatJSON  = "json"
	FormatArrow = "arrow"
)

// Defaults of the parameters that the code refers to.
const (
	DefaultTopic           = "{database}"
	DefaultProgressTopic   = "weir-progress"
	DefaultMaxMessageBytes = 1_000_000
	DefaultTimeout         = 30 * time.Second
	DefaultTxnTimeout      = time.Minute
)

// Params declares the kafka sink's parameters (the task's runtime parameters included).
var Params = append([]pipe.ParamSpec{
	{Key: "brokers", Type: pipe.String, Required: true, Check: func(v string) error { _, err := parseBrokers(v); return err },
		Doc: "seed brokers, host:port separated by commas (a YAML list works too), e.g. 127.0.0.1:9092"},
	{Key: "topic", Type: pipe.String, Default: DefaultTopic, Check: func(v string) error { _, err := ParseTemplate(v); return err },
		Doc: "topic name template; {database}, {device}, {region} and {pipe} are replaced, e.g. weir.{database}"},
	{Key: "key", Type: pipe.Enum, Enum: []string{"device", "database", "none"}, Default: "device",
		Doc: "message key: the device path (one device's messages stay in order in one partition), the database, or none"},
	{Key: "format", Type: pipe.Enum, Enum: []string{FormatJSON, FormatArrow}, Default: FormatJSON,
		Doc: "json: one message per row {device, time, measurement: value...}; arrow: one message per record batch (Arrow IPC stream)"},
	{Key: "delivery", Type: pipe.Enum, Enum: []string{AtLeastOnce, ExactlyOnce}, Default: AtLeastOnce,
		Doc: "at-least-once: idempotent producer, acks from all replicas; exactly-once: one transaction per batch holding the records and the pipe's progress (read_committed consumers see each row once)"},
	{Key: "compression", Type: pipe.Enum, Enum: []string{"none", "gzip", "snappy", "lz4", "zstd"}, Default: "none",
		Doc: "compression of the produced record batches"},
	{Key: "deletions", Type: pipe.Enum, Enum: []string{"skip", "send"}, Default: "skip",
		Doc: "send deletions as JSON messages {kind: deletion, pattern, min_time, max_time} (needs a topic without {device}), or skip them"},
	{Key: "max-message-bytes", Type: pipe.Bytes, Default: strconv.Itoa(DefaultMaxMessageBytes), Min: pipe.MinOf(1024),
		Doc: "largest record batch the producer builds, at most the broker's message.max.bytes; arrow messages are split by rows to fit, a larger single row fails the pipe"},
	{Key: "producer.linger", Type: pipe.Duration, Default: "10ms", Min: pipe.MinOf(0),
		Doc: "how long a partition's record batch waits to fill before it is sent (with exactly-once, each transaction ends with a flush)"},
	{Key: "topic.create", Type: pipe.Bool, Default: "true",
		Doc: "create missing topics (data and progress) before producing to them"},
	{Key: "topic.partitions", Type: pipe.Int, Default: "-1", Check: checkCount(1 << 20),
		Doc: "partitions of created data topics; -1 is the broker's default"},
	{Key: "topic.replication-factor", Type: pipe.Int, Default: "-1", Check: checkCount(32767),
		Doc: "replication factor of created topics; -1 is the broker's default"},
	{Key: "progress.topic", Type: pipe.String, Default: DefaultProgressTopic, Check: ValidTopic,
		Doc: "compacted topic holding each exactly-once task's last committed progress (key pipe/region)"},
	{Key: "transaction.id-prefix", Type: pipe.String, Default: "weir", Check: nonEmpty,
		Doc: "exactly-once: the transactional id is PREFIX.PIPE.REGION, stable across restarts so that a restarted task fences its predecessor"},
	{Key: "transaction.timeout", Type: pipe.Duration, Default: DefaultTxnTimeout.String(), Min: pipe.MinOf(1),
		Doc: "exactly-once: the broker aborts a transaction open longer than this (raise it for very large TsFiles)"},
	{Key: "timeout", Type: pipe.Duration, Default: DefaultTimeout.String(), Min: pipe.MinOf(0.001),
		Doc: "how long opening waits for the brokers and a record waits for delivery before the send fails (the task then retries with backoff)"},
	{Key: "sasl.mechanism", Type: pipe.Enum, Enum: []string{"none", "plain", "scram-sha-256", "scram-sha-512"}, Default: "none",
		Doc: "SASL mechanism"},
	{Key: "sasl.username", Type: pipe.String, Doc: "SASL user"},
	{Key: "sasl.password", Type: pipe.String, Doc: "SASL password; $NAME or ${NAME} reads it from the environment"},
	{Key: "tls.enable", Type: pipe.Bool, Default: "false", Doc: "connect with TLS"},
	{Key: "tls.ca-file", Type: pipe.String, Doc: "PEM CA certificates to verify the brokers with (default: the system's)"},
	{Key: "tls.cert-file", Type: pipe.String, Doc: "PEM client certificate (with tls.key-file) for mutual TLS"},
	{Key: "tls.key-file", Type: pipe.String, Doc: "PEM client key"},
	{Key: "tls.server-name", Type: pipe.String, Doc: "server name to verify (default: the broker's host)"},
	{Key: "tls.insecure-skip-verify", Type: pipe.Bool, Default: "false", Doc: "do not verify the brokers' certificates (tests only)"},
}, pipe.SinkRuntimeParams...)

// Config is the kafka sink's parsed configuration.
type Config struct {
	Brokers         []string
	Topic           *Template
	Key             string // device, database or none
	Format          string // json or arrow
	ExactlyOnce     bool
	Compression     kgo.CompressionCodec
	SendDeletions   bool
	MaxMessageBytes int
	Linger          time.Duration
	CreateTopics    bool
	Partitions      int32
	Replication     int16
	ProgressTopic   string
	TxnPrefix       string
	TxnTimeout      time.Duration
	Timeout         time.Duration
	SASL            sasl.Mechanism // nil: none
	TLS             *tls.Config    // nil: plain TCP
}

// keyErr is an error about one parameter: "sink.KEY: ...".
func keyErr(key, format string, a ...any) error {
	return &pipe.Problem{Key: "sink." + key, Msg: fmt.Sprintf(format, a...)}
}

// ParseConfig checks the sink's parameters beyond their declared types (broker addresses,
// the topic template, TLS files, ...) and returns the configuration. Every problem is
// reported, each naming its key.
func ParseConfig(p pipe.Params) (*Config, error) { return parseConfig(p, true) }

// validate is the plugin's Validate: ParseConfig's checks, but for reading the TLS files
// (they are the node's, read when a task opens), with keys relative to the sink.
func validate(p pipe.Params) []error {
	_, err := parseConfig(p, false)
	var out []error
	for _, e := range pipe.Problems(err) {
		var pr *pipe.Problem
		if errors.As(e, &pr) {
			e = &pipe.Problem{Key: strings.TrimPrefix(pr.Key, "sink."), Msg: pr.Msg}
		}
		out = append(out, e)
	}
	return out
}

// parseConfig is ParseConfig, reading the TLS files only with readFiles.
func parseConfig(p pipe.Params, readFiles bool) (*Config, error) {
	var errs []error
	bad := func(err error) { errs = append(errs, err) }
	c := &Config{
		Key:             or(p.String("key"), "device"),
		Format:          or(p.String("format"), FormatJSON),
		MaxMessageBytes: DefaultMaxMessageBytes,
		Linger:          10 * time.Millisecond,
		CreateTopics:    true,
		Partitions:      -1,
		Replication:     -1,
		ProgressTopic:   or(p.String("progress.topic"), DefaultProgressTopic),
		TxnPrefix:       or(p.String("transaction.id-prefix"), "weir"),
		TxnTimeout:      DefaultTxnTimeout,
		Timeout:         DefaultTimeout,
	}
	badKey := map[string]bool{}
	for _, ps := range Params { // the declared checks: values may come from outside a spec
		if v, ok := p.Raw(ps.Key); ok {
			if err := ps.CheckValue(v); err != nil {
				bad(keyErr(ps.Key, "%v", err))
				badKey[ps.Key] = true
			}
		}
	}
	if !badKey["brokers"] {
		var err error
		if c.Brokers, err = parseBrokers(p.String("brokers")); err != nil {
			bad(keyErr("brokers", "%v", err))
		}
	}
	if !badKey["topic"] {
		t, err := ParseTemplate(or(p.String("topic"), DefaultTopic))
		if err != nil {
			bad(keyErr("topic", "%v", err))
		}
		c.Topic = t
	}
	switch d := or(p.String("delivery"), AtLeastOnce); d {
	case AtLeastOnce:
	case ExactlyOnce:
		c.ExactlyOnce = true
	default:
		bad(keyErr("delivery", "%q is not one of %s, %s", d, AtLeastOnce, ExactlyOnce))
	}
	switch comp := or(p.String("compression"), "none"); comp {
	case "none":
		c.Compression = kgo.NoCompression()
	case "gzip":
		c.Compression = kgo.GzipCompression()
	case "snappy":
		c.Compression = kgo.SnappyCompression()
	case "lz4":
		c.Compression = kgo.Lz4Compression()
	case "zstd":
		c.Compression = kgo.ZstdCompression()
	default:
		bad(keyErr("compression", "%q is not one of none, gzip, snappy, lz4, zstd", comp))
	}
	c.SendDeletions = p.String("deletions") == "send"
	if c.SendDeletions && c.Topic != nil && c.Topic.Uses("device") {
		bad(keyErr("deletions", "send needs a topic template without {device} (a deletion names a pattern, not a device)"))
	}
	if v, ok := p.Raw("max-message-bytes"); ok {
		if n, err := pipe.ParseBytes(v); err == nil {
			if n > 1<<30 {
				bad(keyErr("max-message-bytes", "%s is above 1GiB", v))
			}
			c.MaxMessageBytes = int(n)
		}
	}
	if _, ok := p.Raw("producer.linger"); ok {
		c.Linger = p.Duration("producer.linger")
	}
	if _, ok := p.Raw("topic.create"); ok {
		c.CreateTopics = p.Bool("topic.create")
	}
	if _, ok := p.Raw("topic.partitions"); ok && !badKey["topic.partitions"] {
		c.Partitions = int32(p.Int("topic.partitions"))
	}
	if _, ok := p.Raw("topic.replication-factor"); ok && !badKey["topic.replication-factor"] {
		c.Replication = int16(p.Int("topic.replication-factor"))
	}
	if _, ok := p.Raw("transaction.timeout"); ok {
		c.TxnTimeout = p.Duration("transaction.timeout")
	}
	if _, ok := p.Raw("timeout"); ok {
		c.Timeout = p.Duration("timeout")
	}
	user, pass := p.String("sasl.username"), expandEnv(p.String("sasl.password"))
	switch m := or(p.String("sasl.mechanism"), "none"); m {
	case "none":
		if user != "" {
			bad(keyErr("sasl.username", "is set but sasl.mechanism is none"))
		}
	case "plain":
		c.SASL = plain.Auth{User: user, Pass: pass}.AsMechanism()
	case "scram-sha-256":
		c.SASL = scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()
	case "scram-sha-512":
		c.SASL = scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()
	default:
		bad(keyErr("sasl.mechanism", "%q is not one of none, plain, scram-sha-256, scram-sha-512", m))
	}
	if c.SASL != nil && user == "" {
		bad(keyErr("sasl.username", "missing, required by sasl.mechanism %s", p.String("sasl.mechanism")))
	}
	tc, err := tlsConfig(p, readFiles)
	if err != nil {
		bad(err)
	}
	c.TLS = tc
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// parseBrokers splits a comma-separated list of host:port.
func parseBrokers(v string) ([]string, error) {
	var out []string
	for _, b := range strings.Split(v, ",") {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		host, port, err := net.SplitHostPort(b)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || host == "" || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("%q is not host:port", b)
		}
		out = append(out, b)
	}
	if len(out) == 0 {
		return nil, errors.New("no broker given (host:port, separated by commas)")
	}
	return out, nil
}

// checkCount accepts -1 (the broker's default) or 1..max.
func checkCount(max int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n == 0 || n < -1 || n > max {
			return fmt.Errorf("%s is neither -1 (the broker's default) nor in 1..%d", v, max)
		}
		return nil
	}
}

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("is empty")
	}
	return nil
}

func tlsConfig(p pipe.Params, readFiles bool) (*tls.Config, error) {
	files := []string{"tls.ca-file", "tls.cert-file", "tls.key-file", "tls.server-name"}
	if !p.Bool("tls.enable") {
		for _, k := range append(files, "tls.insecure-skip-verify") {
			if v, ok := p.Raw(k); ok && v != "" && v != "false" {
				return nil, keyErr(k, "is set but tls.enable is false")
			}
		}
		return nil, nil
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         p.String("tls.server-name"),
		InsecureSkipVerify: p.Bool("tls.insecure-skip-verify"), //nolint:gosec // an explicit, documented choice
	}
	if f := p.String("tls.ca-file"); f != "" && readFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, keyErr("tls.ca-file", "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, keyErr("tls.ca-file", "%s holds no PEM certificate", f)
		}
		tc.RootCAs = pool
	}
	cert, key := p.String("tls.cert-file"), p.String("tls.key-file")
	switch {
	case cert != "" && key != "":
		if !readFiles {
			break
		}
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, keyErr("tls.cert-file", "%v", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	case cert != "":
		return nil, keyErr("tls.key-file", "missing, required by tls.cert-file")
	case key != "":
		return nil, keyErr("tls.cert-file", "missing, required by tls.key-file")
	}
	return tc, nil
}

// expandEnv reads a value written as $NAME or ${NAME} from the environment.
func expandEnv(v string) string {
	switch {
	case strings.HasPrefix(v, "${") && strings.HasSuffix(v, "}"):
		return os.Getenv(v[2 : len(v)-1])
	case strings.HasPrefix(v, "$") && len(v) > 1:
		return os.Getenv(v[1:])
	}
	return v
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// ClientOptions returns the franz-go options common to every client of c: seed brokers,
// SASL, TLS, compression, batch size, linger and timeouts.
func (c *Config) ClientOptions() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ProducerBatchCompression(c.Compression),
		kgo.ProducerBatchMaxBytes(int32(c.MaxMessageBytes)),
		kgo.ProducerLinger(c.Linger),
		kgo.RecordDeliveryTimeout(max(c.Timeout, time.Second)), // franz-go's least
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.DialTimeout(min(c.Timeout, 10*time.Second)),
		// what a send may hold unacknowledged: a TsFile's records are produced as they are
		// read, and this bounds them
		kgo.MaxBufferedBytes(max(256<<20, 2*c.MaxMessageBytes)),
	}
	if c.SASL != nil {
		opts = append(opts, kgo.SASL(c.SASL))
	}
	if c.TLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.TLS.Clone()))
	}
	return opts
}
