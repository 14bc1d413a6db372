package kafka

import (
	"errors"
	"testing"

	"github.com/weir-dev/weir/pipe"
	_ "github.com/weir-dev/weir/pipe/extractor"
)

func TestParseConfigNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		kv   []string
		want string
	}{
		{[]string{"brokers", ""}, "sink.brokers: no broker"},
		{[]string{"brokers", "localhost"}, `sink.brokers: "localhost" is not host:port`},
		{[]string{"brokers", "127.0.0.1:0"}, `sink.brokers: "127.0.0.1:0" is not host:port`},
		{[]string{"topic", "x.{databse}"}, "sink.topic: \"x.{databse}\": unknown field {databse} (known: {database}, {device}, {region}, {pipe})"},
		{[]string{"topic", "x/{database}"}, "sink.topic: \"x/{database}\": character '/' is not allowed"},
		{[]string{"topic", "x.{database"}, "sink.topic: \"x.{database\": '{' without '}'"},
		{[]string{"compression", "brotli"}, `sink.compression: "brotli" is not one of none, gzip, snappy, lz4, zstd`},
		{[]string{"delivery", "twice"}, `sink.delivery: "twice" is not one of at-least-once, exactly-once`},
		{[]string{"format", "csv"}, `sink.format: "csv" is not one of json, arrow`},
		{[]string{"max-message-bytes", "12x"}, `sink.max-message-bytes: "12x" is not a byte size`},
		{[]string{"max-message-bytes", "10"}, `sink.max-message-bytes: 10 is below the minimum 1024 bytes`},
		{[]string{"topic.partitions", "0"}, "sink.topic.partitions: 0 is neither -1 (the broker's default) nor in 1..1048576"},
		{[]string{"progress.topic", "a b"}, "sink.progress.topic: topic name \"a b\": character ' ' is not allowed"},
		{[]string{"deletions", "send", "topic", "{device}"}, "sink.deletions: send needs a topic template without {device}"},
		{[]string{"sasl.mechanism", "plain"}, "sink.sasl.username: missing, required by sasl.mechanism plain"},
		{[]string{"sasl.username", "u"}, "sink.sasl.username: is set but sasl.mechanism is none"},
		{[]string{"tls.ca-file", "/x"}, "sink.tls.ca-file: is set but tls.enable is false"},
		{[]string{"tls.enable", "true", "tls.ca-file", "/nonexistent/ca.pem"}, "sink.tls.ca-file: open /nonexistent/ca.pem"},
		{[]string{"tls.enable", "true", "tls.cert-file", "/x"}, "sink.tls.key-file: missing, required by tls.cert-file"},
	} {
		_, err := ParseConfig(params("127.0.0.1:9092", tc.kv...))
		if !contains(err, tc.want) {
			t.Errorf("%v: got %v, want %q", tc.kv, err, tc.want)
		}
	}
	// every problem is reported, not just the first
	_, err := ParseConfig(params("127.0.0.1:9092", "compression", "x", "topic", "{y}"))
	if !contains(err, "sink.compression") || !contains(err, "sink.topic") {
		t.Errorf("both problems not reported: %v", err)
	}
}

func TestParseConfigDefaultsAndSpec(t *testing.T) {
	c, err := ParseConfig(pipe.NewParams(map[string]string{"brokers": "127.0.0.1:9092, 127.0.0.2:9093"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Brokers) != 2 || c.Topic.String() != DefaultTopic || c.Key != "device" || c.Format != FormatJSON ||
		c.ExactlyOnce || c.MaxMessageBytes != DefaultMaxMessageBytes || c.ProgressTopic != DefaultProgressTopic {
		t.Fatalf("defaults: %+v", c)
	}
	// a spec with the sink validates against the declared parameters and normalizes
	s, err := pipe.ParseSpec([]byte(`
name: export
source: {plugin: wal}
sink: {plugin: kafka, brokers: ["127.0.0.1:9092", "127.0.0.1:9093"], delivery: exactly-once, batch: {max-bytes: 1MiB}}
`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	c, err = ParseConfig(n.ParamsOf(pipe.RoleSink, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExactlyOnce || len(c.Brokers) != 2 || c.TxnTimeout != DefaultTxnTimeout {
		t.Fatalf("from spec: %+v", c)
	}
	// lint catches what Open would: the declared checks run at validation
	bad, _ := pipe.ParseSpec([]byte(`name: x
sink: {plugin: kafka, brokers: "a:1,b", compression: brotli, formt: json, topic: "{databse}", progress.topic: "a/b"}
`))
	errs := bad.Validate()
	if len(errs) != 5 {
		t.Fatalf("want 5 problems, got %v", errs)
	}
	for _, want := range []string{"sink.brokers", "sink.compression", "sink.formt", "sink.topic", "sink.progress.topic"} {
		if !contains(errors.Join(errs...), want) {
			t.Errorf("no problem names %s: %v", want, errs)
		}
	}
}

// TestValidateTogether: lint and pipe creation report the problems ParseConfig finds in
// parameters taken together, at their keys, without reading the TLS files (the node's).
func TestValidateTogether(t *testing.T) {
	bad, err := pipe.ParseSpec([]byte(`name: x
sink:
  plugin: kafka
  brokers: 127.0.0.1:9092
  topic: "x.{device}"
  deletions: send
  sasl.username: bob
  tls.ca-file: /nonexistent/ca.pem
  max-message-bytes: 2GiB
`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{ // problem → its line
		"sink.deletions: send needs a topic template without {device}": 6,
		"sink.sasl.username: is set but sasl.mechanism is none":        7,
		"sink.tls.ca-file: is set but tls.enable is false":             8,
		"sink.max-message-bytes: 2GiB is above 1GiB":                   9,
	}
	errs := bad.Validate()
	if len(errs) != len(want) {
		t.Fatalf("want %d problems, got %v", len(want), errs)
	}
	for w, line := range want {
		found := false
		for _, err := range errs {
			var p *pipe.Problem
			found = found || (contains(err, w) && errors.As(err, &p) && p.Line == line)
		}
		if !found {
			t.Errorf("no problem %q at line %d: %v", w, line, errs)
		}
	}
	good, err := pipe.ParseSpec([]byte(`name: x
sink: {plugin: kafka, brokers: "127.0.0.1:9092", tls.enable: true, tls.ca-file: /nonexistent/ca.pem}
`))
	if err != nil {
		t.Fatal(err)
	}
	if errs := good.Validate(); len(errs) != 0 {
		t.Fatalf("a TLS file was read at validation: %v", errs)
	}
	n, err := good.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseConfig(n.ParamsOf(pipe.RoleSink, 0)); !contains(err, "sink.tls.ca-file: open /nonexistent/ca.pem") {
		t.Fatalf("opening does read it: got %v", err)
	}
}

func TestTemplate(t *testing.T) {
	tm, err := ParseTemplate("weir.{database}.{device}-{region}.{pipe}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tm.Render(TemplateValues{Database: "root.db", Device: "root.db.d1", Region: "r0", Pipe: "p"})
	if err != nil || got != "weir.root.db.root.db.d1-r0.p" {
		t.Fatalf("render: %q %v", got, err)
	}
	if !tm.Uses("device") || !tm.Uses("pipe") {
		t.Fatal("Uses")
	}
	if got, err := (&Template{parts: []tmplPart{{field: "region"}}}).Render(TemplateValues{Region: "root.demo/3"}); err != nil || got != "root.demo_3" {
		t.Fatalf("region rendered as %q, %v", got, err)
	}
	if _, err := (&Template{parts: []tmplPart{{field: "database"}}}).Render(TemplateValues{}); err == nil {
		t.Fatal("an empty topic name passed")
	}
	for _, bad := range []string{"", "}", "{", "{x}", "a:b"} {
		if _, err := ParseTemplate(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
