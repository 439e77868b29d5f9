CREATE TABLE "reports" (
	"report_date" text PRIMARY KEY NOT NULL,
	"generated_at" timestamp with time zone NOT NULL,
	"period_start" timestamp with time zone NOT NULL,
	"period_end" timestamp with time zone NOT NULL,
	"body" jsonb NOT NULL
);
--> statement-breakpoint
ALTER TABLE "enrollments" ADD COLUMN "failure_cause" text;--> statement-breakpoint
ALTER TABLE "enrollments" ADD COLUMN "failure_code" text;--> statement-breakpoint
CREATE INDEX "enrollments_completed_idx" ON "enrollments" USING btree ("completed_at");