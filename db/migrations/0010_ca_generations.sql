CREATE TABLE "ca_generations" (
	"profile" text NOT NULL,
	"generation" integer NOT NULL,
	"key_label" text NOT NULL,
	"state" text NOT NULL,
	"certificate" "bytea" NOT NULL,
	"ra_certificate" "bytea",
	"not_after" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"promoted_at" timestamp with time zone,
	"deactivated_at" timestamp with time zone,
	"destroyed_at" timestamp with time zone,
	CONSTRAINT "ca_generations_profile_generation_pk" PRIMARY KEY("profile","generation")
);
--> statement-breakpoint
CREATE UNIQUE INDEX "ca_generations_key_label_idx" ON "ca_generations" USING btree ("key_label");