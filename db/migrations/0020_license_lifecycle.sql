-- License lifecycle (workflows/license-lifecycle.ts). The row is created by the license service
-- and from then on written only by the workflow's transition activity.

-- Where a trial goes when it ends unconverted: straight to expired, or into grace first.
ALTER TABLE licenses ADD COLUMN trial_end_state text NOT NULL DEFAULT 'expired' CHECK (trial_end_state IN ('expired', 'grace'));
ALTER TABLE licenses ADD CONSTRAINT licenses_dates_ordered CHECK (expires_at > not_before);

-- `version` is what agents compare to detect a newer status: it may only rise, and the license's
-- identity never changes under it.
CREATE FUNCTION licenses_guard_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.version < OLD.version THEN
    RAISE EXCEPTION 'licenses.version may only rise (% -> %)', OLD.version, NEW.version USING ERRCODE = 'check_violation';
  END IF;
  IF NEW.id <> OLD.id OR NEW.customer_id <> OLD.customer_id THEN
    RAISE EXCEPTION 'a license keeps its id and customer' USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER licenses_guard_update BEFORE UPDATE ON licenses FOR EACH ROW EXECUTE FUNCTION licenses_guard_update();

-- Keyset pagination of the admin and portal lists (newest first).
CREATE INDEX licenses_created ON licenses (created_at DESC, id DESC);
CREATE INDEX licenses_customer_created ON licenses (customer_id, created_at DESC, id DESC);
