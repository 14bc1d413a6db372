-- The same pipe as copy.yaml, in IoTDB's SQL.
CREATE PIPE copy
  WITH SOURCE ('source'='hybrid', 'source.pattern'='root.demo.**',
               'selector.max-pending-events'='1000', 'selector.max-lag'='30s')
  WITH PROCESSOR ('processor'='do-nothing-processor')
  WITH SINK ('sink'='write-back-sink', 'sink.database'='root.copy');
