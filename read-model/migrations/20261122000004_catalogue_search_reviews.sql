-- Catalogue search: brand, ratings, a weighted full-text document with a GIN index, and the
-- indexes behind the filters and sort orders. Reviews, one per customer and product.

-- array_to_string is only STABLE; a generated column needs an IMMUTABLE expression, and
-- joining a text[] with spaces is immutable.
CREATE OR REPLACE FUNCTION commerce_words(TEXT[]) RETURNS TEXT
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT array_to_string($1, ' ') $$;

ALTER TABLE products ADD COLUMN IF NOT EXISTS brand TEXT;
ALTER TABLE products ADD COLUMN IF NOT EXISTS rating_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN IF NOT EXISTS rating_sum BIGINT NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN IF NOT EXISTS rating_avg DOUBLE PRECISION
    GENERATED ALWAYS AS (CASE WHEN rating_count = 0 THEN 0
                              ELSE rating_sum::double precision / rating_count END) STORED;
ALTER TABLE products ADD COLUMN IF NOT EXISTS search TSVECTOR GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, name), 'A') ||
    setweight(to_tsvector('english'::regconfig, coalesce(brand, '')), 'A') ||
    setweight(to_tsvector('english'::regconfig, commerce_words(categories)), 'B') ||
    setweight(to_tsvector('english'::regconfig, description), 'C')) STORED;

CREATE INDEX IF NOT EXISTS products_search ON products USING GIN (search);
CREATE INDEX IF NOT EXISTS products_categories ON products USING GIN (categories);
CREATE INDEX IF NOT EXISTS products_attributes ON products USING GIN (attributes jsonb_path_ops);
CREATE INDEX IF NOT EXISTS products_price ON products (price_minor, id);
CREATE INDEX IF NOT EXISTS products_name ON products ((name COLLATE "C"), id);
CREATE INDEX IF NOT EXISTS products_newest ON products (created_at DESC, id);
CREATE INDEX IF NOT EXISTS products_rating ON products (rating_avg DESC, id);
CREATE INDEX IF NOT EXISTS products_brand ON products (brand);

CREATE TABLE IF NOT EXISTS reviews (
    product_id  UUID        NOT NULL,
    customer_id UUID        NOT NULL,
    order_id    UUID        NOT NULL,
    rating      SMALLINT    NOT NULL CHECK (rating BETWEEN 1 AND 5),
    title       TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (product_id, customer_id)
);
CREATE INDEX IF NOT EXISTS reviews_newest ON reviews (product_id, created_at DESC);
