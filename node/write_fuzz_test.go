package node

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/weir-dev/weir/node/api"
)

// Any JSON body makes a tablet that validates, or an error naming a field; never a panic.
func FuzzBuildTablet(f *testing.F) {
	f.Add([]byte(`{"tablets":[{"device":"root.a.d1","columns":[{"name":"t","type":"DOUBLE"},{"name":"ok","type":"BOOLEAN"}],"times":[1,2],"values":[[1.5,null],[true,false]]}]}`))
	f.Add([]byte(`{"tablets":[{"device":"root.a.d1","columns":[{"name":"n","type":"INT32"}],"times":[2,1,2],"values":[[1,2147483648,3]]}]}`))
	f.Add([]byte(`{"tablets":[{"device":"root.a.d1","columns":[{"name":"s","type":"TEXT"}],"times":[1],"values":[["\u00ff"]]}]}`))
	f.Add([]byte(`{"tablets":[{"device":"root","columns":[],"times":[],"values":[]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var req api.Tablets
		if dec.Decode(&req) != nil {
			return
		}
		for _, jt := range req.Tablets {
			tb, err := buildTablet(jt, "tablets[0]")
			if err != nil {
				if e, ok := err.(*api.Error); !ok || e.Message == "" {
					t.Fatalf("error without a message: %#v", err)
				}
				continue
			}
			if err := tb.Validate(); err != nil {
				t.Fatalf("built tablet does not validate: %v", err)
			}
			tb.Release()
		}
	})
}
