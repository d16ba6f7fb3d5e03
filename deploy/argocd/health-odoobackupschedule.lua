-- Argo CD health check for oec.sh/OdooBackupSchedule (docs/status-contract.md, OdooBackupSchedule).
-- Argo CD runs it with `obj` set to the live object; it returns {status = ..., message = ...}.
-- Basic Lua only (no string./table./os. calls). Order of the checks:
--   deletionTimestamp                                -> Progressing "Pending deletion"
--   no status / no conditions                        -> Progressing "Waiting for status"
--   Stalled=True                                     -> Degraded with the Stalled message (e.g. no
--                                                      environment matches, a bad time zone)
--   spec.suspend: true                               -> Suspended
--   status.observedGeneration ~= metadata.generation -> Progressing (new spec not evaluated yet)
--   anything else                                    -> Healthy (a failed run shows on its OdooBackup)
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
local spec = obj.spec or {}
local status = obj.status
if metadata.deletionTimestamp ~= nil then
  return {status = "Progressing", message = "Pending deletion"}
end
if status == nil or status.conditions == nil or #status.conditions == 0 then
  return {status = "Progressing", message = "Waiting for status"}
end
local stalled = find(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  return {status = "Degraded", message = text(stalled, "Stalled")}
end
if spec.suspend == true then
  return {status = "Suspended", message = "Suspended (spec.suspend)"}
end
local observed = status.observedGeneration
if observed ~= nil and metadata.generation ~= nil and tostring(observed) ~= tostring(metadata.generation) then
  return {status = "Progressing", message = "Waiting for generation " .. tostring(metadata.generation)
    .. " to be evaluated"}
end
local message = text(find(status.conditions, "Ready"), nil)
if message == nil and status.nextScheduleTime ~= nil then
  message = "Next run at " .. status.nextScheduleTime
end
return {status = "Healthy", message = message or "Scheduled"}
