ALTER TABLE "enrollments" ADD COLUMN "verifier" text;--> statement-breakpoint
CREATE INDEX "audit_events_occurred_idx" ON "audit_events" USING btree ("occurred_at","id");--> statement-breakpoint
CREATE INDEX "enrollments_outcome_idx" ON "enrollments" USING btree ("profile","verifier","status");