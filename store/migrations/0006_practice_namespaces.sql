-- Tenancy (issue 17 item 2): each practice made from now on has its own
-- Temporal namespace and its own payload data key, so a practitioner sees
-- only their own practice in the Temporal UI and the codec endpoint decodes
-- only their own payloads.
--
-- temporal_namespace is set once, when the practice is made and before the
-- namespace is registered, so a registration cut short never lets the
-- practice's workflows start in the shared namespace. Practices made before
-- this migration keep NULL: they run in TEMPORAL_NAMESPACE under the master
-- key, as before.
ALTER TABLE practices ADD COLUMN temporal_namespace text UNIQUE;
-- Set once, whatever writes it: a practice's workflows and Schedules live in
-- that namespace, so moving the practice would strand them.
CREATE FUNCTION practices_namespace_set_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.temporal_namespace IS NOT NULL AND NEW.temporal_namespace IS DISTINCT FROM OLD.temporal_namespace THEN
        RAISE EXCEPTION 'practice % already has namespace %', OLD.id, OLD.temporal_namespace
            USING ERRCODE = 'check_violation', CONSTRAINT = 'practices_namespace_set_once';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER practices_namespace_set_once BEFORE UPDATE OF temporal_namespace ON practices
    FOR EACH ROW EXECUTE FUNCTION practices_namespace_set_once();

-- A practice's data keys: random 32-byte AES-256 keys, stored only wrapped
-- (AES-256-GCM) by a master key (TEMPORAL_ENCRYPTION_KEY), the wrapping bound
-- to the practice and key ID. One current key per practice encrypts; every
-- key still decrypts the payloads written under it.
CREATE TABLE practice_data_keys (
    key_id        text PRIMARY KEY,
    practice_id   text NOT NULL REFERENCES practices(id),
    master_key_id text NOT NULL,
    wrapped_key   bytea NOT NULL,
    current       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX practice_data_keys_one_current ON practice_data_keys(practice_id) WHERE current;
CREATE INDEX practice_data_keys_practice ON practice_data_keys(practice_id);
