-- Argo CD action "start": spec.powerState = Running; the operator starts the environment
-- (README "Argo CD resource actions": if Git sets spec.powerState, Git wins at the next sync).
if obj.spec == nil then
  obj.spec = {}
end
obj.spec.powerState = "Running"
return obj
