-- Valid SQL, invalid pipe.
CREATE PIPE p
  WITH SOURCE ('source'='test-spec-wall', 'pattern'='root.**')
  -- want: 3:16: source: unknown source "test-spec-wall" (registered:
  WITH PROCESSOR ('processor'='test-spec-downsample', 'processor.methd'='swinging-door')
  -- want: 5:55: processors[0].methd: unknown key (known: method, interval, error); did you mean "method"?
  WITH SINK ('sink'='test-spec-write-back', 'database'='root.copy', 'database'='root.other')
  -- want: 7:69: sink.database: given twice
