CREATE TABLE "service_credentials" (
	"name" text NOT NULL,
	"generation" integer NOT NULL,
	"key_label" text NOT NULL,
	"spki" "bytea" NOT NULL,
	"certificate" "bytea",
	"serial_hex" text,
	"not_after" timestamp with time zone,
	"state" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"activated_at" timestamp with time zone,
	"retired_at" timestamp with time zone,
	CONSTRAINT "service_credentials_name_generation_pk" PRIMARY KEY("name","generation")
);
--> statement-breakpoint
CREATE UNIQUE INDEX "service_credentials_key_label" ON "service_credentials" USING btree ("key_label");