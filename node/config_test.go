package node_test

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-dev/weir/engine/wal"
	"github.com/weir-dev/weir/node"
)

func TestConfig(t *testing.T) {
	c, err := node.ParseConfig([]byte(`
id: 2
data: /tmp/n2
http: 127.0.0.1:0
flight: 127.0.0.1:7071
regions: 8
durability: batch
compression: zstd
memtable-size: 16MiB
flush-age: 1m
max-body-size: 1MiB
auto-create: false
pipe-sync-interval: 5s
log: {level: debug, format: json}
databases: [{name: root.demo, regions: 2}]
`))
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Options()
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != 2 || o.Regions != 8 || o.Durability != wal.Batch || o.Compression != "zstd" || o.MemtableSize != 16<<20 ||
		o.FlushAge != time.Minute || o.MaxBodyBytes != 1<<20 || o.AutoCreate || o.FlightAddr != "127.0.0.1:7071" ||
		len(o.Databases) != 1 || o.Databases[0].Regions != 2 || o.ShutdownTimeout != node.DefaultShutdownTimeout ||
		o.PipeSyncInterval != 5*time.Second {
		t.Errorf("options %+v", o)
	}

	if _, err := node.ParseConfig([]byte("id: 1\ndat: /tmp\n")); err == nil || !strings.Contains(err.Error(), `unknown field "dat"`) {
		t.Errorf("unknown key: %v", err)
	}
	c, err = node.ParseConfig([]byte("id: 0\nhttp: nowhere\nregions: 2000\ndurability: maybe\nmemtable-size: lots\npipe-sync-interval: -1s\nlog: {level: loud}\ndatabases: [{name: demo}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Options()
	for _, key := range []string{"id:", "data:", "http:", "regions:", "durability:", "memtable-size:", "pipe-sync-interval:", "log.level:", "databases[0].name:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("no problem names %s: %v", key, err)
		}
	}
}
