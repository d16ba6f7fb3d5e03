-- Argo CD health check for the one-shot kinds oec.sh/OdooBackup and oec.sh/OdooRestore
-- (docs/status-contract.md §9). Argo CD runs it with `obj` set to the live object; it returns
-- {status = ..., message = ...}. Basic Lua only (no string./table./os. calls). By status.phase
-- (the spec is immutable):
--   deletionTimestamp          -> Progressing "Pending deletion"
--   no status.phase            -> Progressing "Waiting for status"
--   Completed                  -> Healthy
--   Failed, Refused, Expired   -> Degraded "<phase>: <why>" (Failed: the API's error; Refused: a
--                                 restore's check failed and nothing was sent; Expired: OEC.sh no
--                                 longer keeps the backup)
--   Pending, Running, other    -> Progressing (Reconciling's message: e.g. waiting for another task)
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

local FALLBACK = {
  Failed = "the operation failed",
  Refused = "nothing was sent",
  Expired = "OEC.sh no longer keeps this backup",
}

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
if FALLBACK[phase] ~= nil then
  return {status = "Degraded", message = phase .. ": " .. text(find(conditions, "Stalled"), status.message or FALLBACK[phase])}
end
return {status = "Progressing", message = text(find(conditions, "Reconciling"), text(find(conditions, "Ready"), phase))}
