-- Invoices and contributor statements. Numbers are gapless and sequential
-- per hub: a number is taken in the same transaction that stores the
-- document (see Store.IssueInvoice), so a rollback leaves no hole.
CREATE TABLE invoices (
    number    bigint PRIMARY KEY CHECK (number > 0),
    kind      text NOT NULL CHECK (kind IN ('invoice', 'statement')),
    party     text NOT NULL,
    job       text NOT NULL DEFAULT '',
    issued_at timestamptz NOT NULL,
    doc       jsonb NOT NULL
);
CREATE INDEX invoices_party ON invoices (party, number);

---- create above / drop below ----

DROP TABLE invoices;
