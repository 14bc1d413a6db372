create pipe if not exists export_1
with extractor (
  'extractor'='test-spec-wal-extractor',
  'extractor.pattern'='root.factory.**',
  'source.realtime.mode'='batch',
  'extractor.history.enable'='false'
)
with processor (
  'processor'='test-spec-downsample-processor',
  'processor.method'='swinging-door',
  'processor.error'='0.5'
)
with connector (
  "connector"="test-spec-kafka-connector",
  "connector.brokers"="kafka-1:9092,kafka-2:9092",
  'sink.topic'='factory',
  'sink.batch.max-bytes'='4MiB'
);
