-- Argo CD health check for oec.sh/OdooEnvironment (README "GitOps with Argo CD and Flux").
-- Argo CD runs it with `obj` set to the live object; it returns {status = ..., message = ...}.
-- Basic Lua only (no string./table./os. calls): Argo CD opens just a few libraries unless
-- resource.customizations.useOpenLibs is set. Order of the checks:
--   deletionTimestamp                                -> Progressing "Pending deletion"
--   no status / no conditions                        -> Progressing "Waiting for status"
--   Paused=True (annotation oec.sh/paused)           -> Suspended (also with a pending spec change)
--   status.observedGeneration ~= metadata.generation -> Progressing (new spec not reconciled yet)
--   Stalled=True                                     -> Degraded with the Stalled message
--   Ready=False reason PlatformPaused                -> Degraded with the Ready message (paused by
--                                                      OEC.sh, e.g. quota: not the user's stop, and
--                                                      nothing the operator will change by itself)
--   Ready=True for the current generation            -> Healthy (also reason Stopped: a deliberate
--                                                      stop, spec.powerState Stopped)
--   anything else (Reconciling=True, Ready False/Unknown, Ready=True of an older generation)
--                                                    -> Progressing with the Ready message
local function find(conditions, conditionType)
  for _, c in ipairs(conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
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

-- Generations are numbers; tostring() also copes with a value decoded as a string.
local function sameGeneration(a, b)
  if type(a) == "number" and type(b) == "number" then
    return a == b
  end
  return tostring(a) == tostring(b)
end

local metadata = obj.metadata or {}
local generation = metadata.generation
local status = obj.status
local conditions = nil
if status ~= nil then
  conditions = status.conditions
end
local ready = nil
if conditions ~= nil then
  ready = find(conditions, "Ready")
end

if metadata.deletionTimestamp ~= nil then
  local message = "Pending deletion"
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    message = message .. ": " .. ready.message
  end
  return {status = "Progressing", message = message}
end

if conditions == nil or #conditions == 0 then
  return {status = "Progressing", message = "Waiting for status"}
end

local paused = find(conditions, "Paused")
if isTrue(paused) then
  return {status = "Suspended", message = text(paused, "Paused")}
end

local observed = status.observedGeneration
if observed ~= nil and generation ~= nil and not sameGeneration(observed, generation) then
  local message = "Waiting for generation " .. tostring(generation) .. " to be reconciled (last reconciled: "
    .. tostring(observed) .. ")"
  if ready ~= nil and ready.status ~= "True" and ready.observedGeneration ~= nil
      and sameGeneration(ready.observedGeneration, generation) and text(ready, nil) ~= nil then
    message = message .. ": " .. text(ready, "")
  end
  return {status = "Progressing", message = message}
end

local stalled = find(conditions, "Stalled")
if isTrue(stalled) then
  return {status = "Degraded", message = text(stalled, "Stalled")}
end

if ready ~= nil and ready.status == "False" and ready.reason == "PlatformPaused" then
  return {status = "Degraded", message = text(ready, "PlatformPaused")}
end

if isTrue(ready) then
  if ready.observedGeneration == nil or generation == nil or sameGeneration(ready.observedGeneration, generation) then
    return {status = "Healthy", message = text(ready, "Available")}
  end
  return {
    status = "Progressing",
    message = "Waiting for generation " .. tostring(generation) .. " to be reconciled (Ready is for generation "
      .. tostring(ready.observedGeneration) .. ")",
  }
end

local reconciling = find(conditions, "Reconciling")
local message = text(ready, nil)
if isTrue(reconciling) and (message == nil or reconciling.reason == "ProgressingWithRetry"
    or reconciling.reason == "RateLimited") then
  -- a retry is newer news than the Ready message it leaves untouched
  message = text(reconciling, message)
end
return {status = "Progressing", message = message or "Waiting for status"}
