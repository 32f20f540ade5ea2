-- Argo CD health check for tenancy.orgoperator.io/OrganizationPlan.
-- Healthy: Ready is True and status.observedGeneration is metadata.generation.
-- Degraded: Ready is False, for the current generation, for a reason that needs a person
--   (an invalid plan, ReconcileError, ...).
-- Progressing: no status yet, a generation not yet observed, Ready Unknown, or Ready False while
--   the operator is still working (Progressing).
-- Argo CD does not run this check on an object being deleted: it reports it Progressing
-- ("Pending deletion"); a blocked deletion shows in the object's Ready condition and events.
local hs = { status = "Progressing", message = "Waiting for the operator to reconcile the plan" }
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation or 0
local observed = obj.status.observedGeneration or 0
local ready = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then
    ready = c
  end
end
if ready == nil then
  return hs
end
local message = ready.message or ""
-- A condition is current when it was written for this generation: a reconcile that could not
-- finish (deletion blocked, an error) leaves status.observedGeneration behind but dates Ready.
local current = observed >= generation or (ready.observedGeneration or 0) >= generation
if not current then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
if ready.status == "True" and observed >= generation then
  hs.status = "Healthy"
  hs.message = message
  return hs
end
if ready.status == "False" and ready.reason ~= "Progressing" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. message
  return hs
end
hs.message = message
return hs
