-- Issue 18: every chunk used to add its count to its batch's row (certificate_count), so the chunks of
-- one batch, issued in parallel by several workers, queued on that one row lock until the previous
-- chunk's commit had reached the standby. Nothing read the column: progress is the sum over
-- batch_chunks (readBatchProgress). started_at is now set when the batch opens for issuing.
ALTER TABLE batches DROP COLUMN certificate_count;
UPDATE batches SET started_at = created_at WHERE started_at IS NULL AND status <> 'accepted';
