CREATE TABLE "ocsp_responders" (
	"issuing_ca" text PRIMARY KEY NOT NULL,
	"spki" "bytea" NOT NULL,
	"certificate" "bytea",
	"not_after" timestamp with time zone,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
