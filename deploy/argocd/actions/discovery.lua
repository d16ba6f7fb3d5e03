-- Argo CD resource actions for oec.sh/OdooEnvironment: which actions the UI offers for `obj`
-- (README "Argo CD resource actions"). Basic Lua only. Every action is offered, and disabled:
--   all four      while the resource is being deleted, or with managementPolicy Observe (the
--                 operator never writes an observed environment)
--   start         when spec.powerState is Running (or absent: Running is the default)
--   stop          when spec.powerState is Stopped
--   restart       when spec.powerState is Stopped (OEC.sh restarts only a running environment)
local actions = {}
actions["restart"] = {["disabled"] = false, ["iconClass"] = "fa fa-fw fa-redo", ["displayName"] = "Restart"}
actions["redeploy"] = {["disabled"] = false, ["iconClass"] = "fa fa-fw fa-rocket", ["displayName"] = "Redeploy"}
actions["start"] = {["disabled"] = false, ["iconClass"] = "fa fa-fw fa-play", ["displayName"] = "Start"}
actions["stop"] = {["disabled"] = false, ["iconClass"] = "fa fa-fw fa-stop", ["displayName"] = "Stop"}

local metadata = obj.metadata or {}
local spec = obj.spec or {}
local stopped = spec.powerState == "Stopped"

if metadata.deletionTimestamp ~= nil or spec.managementPolicy == "Observe" then
  for _, action in pairs(actions) do
    action["disabled"] = true
  end
  return actions
end

actions["start"]["disabled"] = not stopped
actions["stop"]["disabled"] = stopped
actions["restart"]["disabled"] = stopped
return actions
