CREATE TABLE "admissions" (
	"enrollment_id" text PRIMARY KEY NOT NULL,
	"profile" text NOT NULL,
	"device_id" text NOT NULL,
	"identity" jsonb NOT NULL,
	"csr_sha256" text NOT NULL,
	"renewal_of" text,
	"approval_required" boolean DEFAULT false NOT NULL,
	"approved_by" text,
	"approved_at" timestamp with time zone,
	"readmits" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "event_deliveries" (
	"event_id" text NOT NULL,
	"target" text NOT NULL,
	"state" text DEFAULT 'pending' NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"pending_since" timestamp with time zone DEFAULT now() NOT NULL,
	"next_attempt_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_until" timestamp with time zone,
	"last_error" text,
	"delivered_at" timestamp with time zone,
	"dead_at" timestamp with time zone,
	CONSTRAINT "event_deliveries_event_id_target_pk" PRIMARY KEY("event_id","target")
);
--> statement-breakpoint
CREATE TABLE "event_outbox" (
	"id" text PRIMARY KEY NOT NULL,
	"type" text NOT NULL,
	"profile" text NOT NULL,
	"device_id" text,
	"payload" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "serials" (
	"issuing_ca" text NOT NULL,
	"serial_hex" text NOT NULL,
	"enrollment_id" text NOT NULL,
	"not_before" timestamp with time zone NOT NULL,
	"not_after" timestamp with time zone NOT NULL,
	"reserved_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "serials_issuing_ca_serial_hex_pk" PRIMARY KEY("issuing_ca","serial_hex")
);
--> statement-breakpoint
CREATE TABLE "webhook_receipts" (
	"integration" text NOT NULL,
	"delivery_id" text NOT NULL,
	"received_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "webhook_receipts_integration_delivery_id_pk" PRIMARY KEY("integration","delivery_id")
);
--> statement-breakpoint
ALTER TABLE "certificates" ADD COLUMN "identity" jsonb;--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "blocked_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "blocked_reason" text;--> statement-breakpoint
ALTER TABLE "one_time_challenges" ADD COLUMN "device_id" text;--> statement-breakpoint
CREATE INDEX "event_deliveries_due_idx" ON "event_deliveries" USING btree ("state","next_attempt_at");--> statement-breakpoint
CREATE INDEX "event_outbox_created_idx" ON "event_outbox" USING btree ("created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "serials_enrollment_idx" ON "serials" USING btree ("enrollment_id");