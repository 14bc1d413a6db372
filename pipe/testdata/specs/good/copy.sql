-- The same pipe as copy.yaml, in IoTDB's SQL.
CREATE PIPE copy
  WITH SOURCE ('source'='test-spec-wal', 'pattern'='root.demo.**', 'start-time'='0')
  WITH PROCESSOR ('processor'='test-spec-nop')
  WITH SINK ('sink'='test-spec-write-back', 'database'='root.copy');
