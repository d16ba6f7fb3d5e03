-- Argo CD action "stop": spec.powerState = Stopped; the operator stops the environment, which then
-- reports Ready=True reason Stopped (Healthy) (README "Argo CD resource actions": if Git sets
-- spec.powerState, Git wins at the next sync).
if obj.spec == nil then
  obj.spec = {}
end
obj.spec.powerState = "Stopped"
return obj
