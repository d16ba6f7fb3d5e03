-- Argo CD action "restart": sets the annotation oec.sh/restart-requested-at to a new token (the
-- current UTC time), so the operator restarts the environment once (README "Annotations").
-- Basic Lua and Argo CD's safe os library (os.date) only.
local os = require("os")
local key = "oec.sh/restart-requested-at"
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local token = os.date("!%Y-%m-%dT%H:%M:%SZ")
if obj.metadata.annotations[key] == token then
  token = token .. ".1" -- a second click within the same second is still a new token
end
obj.metadata.annotations[key] = token
return obj
