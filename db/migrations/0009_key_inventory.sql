CREATE TABLE "key_inventory" (
	"token_label" text NOT NULL,
	"key_label" text NOT NULL,
	"token_role" text NOT NULL,
	"role" text NOT NULL,
	"algorithm" text NOT NULL,
	"usages" jsonb NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"state" text NOT NULL,
	"certificate_der" "bytea",
	"not_after" timestamp with time zone,
	"signatures" bigint DEFAULT 0 NOT NULL,
	"first_seen_at" timestamp with time zone NOT NULL,
	"last_seen_at" timestamp with time zone NOT NULL,
	"compromised_at" timestamp with time zone,
	CONSTRAINT "key_inventory_token_label_key_label_pk" PRIMARY KEY("token_label","key_label")
);
