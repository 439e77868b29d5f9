CREATE TABLE "crls" (
	"issuing_ca" text PRIMARY KEY NOT NULL,
	"crl_number" bigint NOT NULL,
	"this_update" timestamp with time zone NOT NULL,
	"next_update" timestamp with time zone NOT NULL,
	"der" "bytea" NOT NULL
);
--> statement-breakpoint
CREATE TABLE "one_time_challenges" (
	"challenge_sha256" text PRIMARY KEY NOT NULL,
	"profile" text NOT NULL,
	"issued_to" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"used_at" timestamp with time zone,
	"used_by_transaction" text
);
--> statement-breakpoint
ALTER TABLE "certificates" ADD COLUMN "mdm_context" jsonb;--> statement-breakpoint
CREATE INDEX "one_time_challenges_profile_idx" ON "one_time_challenges" USING btree ("profile","expires_at");