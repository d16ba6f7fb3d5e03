-- Argo CD action "redeploy": sets the annotation oec.sh/redeploy-requested-at to a new token (the
-- current UTC time), so the operator deploys the environment once, also with deployPolicy
-- Manual (README "Annotations"). The annotation, not spec.deploy.request: Git owns the spec.
-- Basic Lua and Argo CD's safe os library (os.date) only.
local os = require("os")
local key = "oec.sh/redeploy-requested-at"
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
local token = os.date("!%Y-%m-%dT%H:%M:%SZ")
if obj.metadata.annotations[key] == token then
  token = token .. ".1" -- a second click within the same second is still a new token
end
obj.metadata.annotations[key] = token
return obj
