-- The same pipe as export.yaml, in IoTDB's SQL.
CREATE PIPE `kafka-export`
  WITH SOURCE ('source'='hybrid', 'pattern'='root.demo.**')
  WITH PROCESSOR ('processor'='downsample', 'method'='tumbling-time', 'interval'='10s', 'strategy'='last')
  WITH SINK ('sink'='kafka', 'brokers'='127.0.0.1:9092', 'topic'='weir.{database}', 'key'='device',
             'format'='json', 'delivery'='exactly-once', 'compression'='lz4',
             'batch.max-events'='256', 'batch.linger'='50ms');
