-- Issue 21 (H2): an API key dies with its creator's right to create keys (admin or owner of the
-- key's tenant, account enabled). From now on the store revokes them when that right is lost;
-- this revokes the live keys whose creators had already lost it before (demoted, removed or
-- disabled), such as a key minted with a stale access token. Keys made by the operator from
-- the command line (no creator, or the nil id of the local operator) are kept.
UPDATE api_keys
SET revoked_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000
WHERE revoked_at IS NULL
  AND created_by IS NOT NULL
  AND created_by <> '00000000-0000-0000-0000-000000000000'
  AND NOT EXISTS (
    SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id
    WHERE m.tenant_id = api_keys.tenant_id
      AND m.user_id = api_keys.created_by
      AND m.role IN ('owner', 'admin')
      AND u.disabled_at IS NULL
  );
