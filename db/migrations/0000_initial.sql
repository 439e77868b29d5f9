CREATE TABLE "audit_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"occurred_at" timestamp with time zone DEFAULT now() NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"profile" text,
	"device_id" text,
	"subject" text NOT NULL,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "certificates" (
	"issuing_ca" text NOT NULL,
	"serial_hex" text NOT NULL,
	"profile" text NOT NULL,
	"device_id" text NOT NULL,
	"enrollment_id" text NOT NULL,
	"subject" text NOT NULL,
	"not_before" timestamp with time zone NOT NULL,
	"not_after" timestamp with time zone NOT NULL,
	"sha256_hex" text NOT NULL,
	"der" "bytea" NOT NULL,
	"status" text DEFAULT 'valid' NOT NULL,
	"revoked_at" timestamp with time zone,
	"revocation_reason" text,
	"issued_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "certificates_issuing_ca_serial_hex_pk" PRIMARY KEY("issuing_ca","serial_hex")
);
--> statement-breakpoint
CREATE TABLE "devices" (
	"profile" text NOT NULL,
	"device_id" text NOT NULL,
	"status" text NOT NULL,
	"current_certificate_serial" text,
	"certificate_not_after" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "devices_profile_device_id_pk" PRIMARY KEY("profile","device_id")
);
--> statement-breakpoint
CREATE TABLE "enrollments" (
	"id" text PRIMARY KEY NOT NULL,
	"profile" text NOT NULL,
	"transaction_id" text NOT NULL,
	"device_id" text,
	"message_type" text NOT NULL,
	"status" text NOT NULL,
	"fail_info" text,
	"failure_reason" text,
	"csr_sha256" text NOT NULL,
	"csr_sealed" "bytea" NOT NULL,
	"certificate_serial" text,
	"created_at" timestamp with time zone NOT NULL,
	"completed_at" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "audit_events_subject_idx" ON "audit_events" USING btree ("subject");--> statement-breakpoint
CREATE INDEX "audit_events_device_idx" ON "audit_events" USING btree ("profile","device_id");--> statement-breakpoint
CREATE UNIQUE INDEX "certificates_enrollment_idx" ON "certificates" USING btree ("enrollment_id");--> statement-breakpoint
CREATE INDEX "certificates_device_idx" ON "certificates" USING btree ("profile","device_id");--> statement-breakpoint
CREATE INDEX "certificates_not_after_idx" ON "certificates" USING btree ("not_after");--> statement-breakpoint
CREATE INDEX "devices_status_idx" ON "devices" USING btree ("status");--> statement-breakpoint
CREATE INDEX "enrollments_device_idx" ON "enrollments" USING btree ("profile","device_id");