-- A missing comma between two pairs.
CREATE PIPE p
  WITH SINK ('sink'='test-spec-write-back' 'database'='root.copy')
-- want: 3:44: unexpected "'database'" (expected ")")
