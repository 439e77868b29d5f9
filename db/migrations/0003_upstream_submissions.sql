CREATE TABLE "upstream_submissions" (
	"enrollment_id" text PRIMARY KEY NOT NULL,
	"profile" text NOT NULL,
	"state" text NOT NULL,
	"upstream_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
