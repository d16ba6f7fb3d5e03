-- Argo CD health check for oec.sh/OdooBackup (docs/status-contract.md, OdooBackup).
-- Argo CD runs it with `obj` set to the live object; it returns {status = ..., message = ...}.
-- Basic Lua only (no string./table./os. calls). By status.phase (the spec is immutable):
--   deletionTimestamp        -> Progressing "Pending deletion"
--   no status.phase          -> Progressing "Waiting for status"
--   Completed                -> Healthy
--   Pending, Running         -> Progressing (Reconciling's message: e.g. waiting for another task)
--   Failed                   -> Degraded with the API's error message
--   Expired                  -> Degraded "Expired: ..." (OEC.sh no longer keeps the data)
--   any other phase          -> Progressing
local function find(conditions, conditionType)
  for _, c in ipairs(conditions or {}) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function text(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local metadata = obj.metadata or {}
local status = obj.status or {}
local conditions = status.conditions
local phase = status.phase

if metadata.deletionTimestamp ~= nil then
  return {status = "Progressing", message = "Pending deletion"}
end
if phase == nil or phase == "" then
  return {status = "Progressing", message = "Waiting for status"}
end
if phase == "Completed" then
  return {status = "Healthy", message = text(find(conditions, "Ready"), "Completed")}
end
if phase == "Failed" then
  return {status = "Degraded", message = text(find(conditions, "Stalled"), status.message or "Backup failed")}
end
if phase == "Expired" then
  local detail = text(find(conditions, "Stalled"), status.message or "OEC.sh no longer keeps this backup")
  return {status = "Degraded", message = "Expired: " .. detail}
end
local reconciling = find(conditions, "Reconciling")
return {status = "Progressing", message = text(reconciling, text(find(conditions, "Ready"), phase))}
