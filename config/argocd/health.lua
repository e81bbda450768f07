-- Argo CD health check for downloads.pixxel.space/TaskDownload.
-- Healthy: Ready (a usable URL is published, also while it is refreshed) and the current generation
-- observed. Progressing: waiting for a URL, or not yet observed. Degraded: Stalled or Failed (the user
-- must act: a bad request, a revoked key (401/403), unknown IDs (404), a failed task, a missing Secret,
-- a target conflict), also while a URL still works: it cannot be refreshed and will expire.
-- Suspended: spec.suspend. The table in the README's Health section lists every case.
local hs = {}

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Reconciliation is suspended (spec.suspend)"
  return hs
end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to handle the TaskDownload"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end

local ready, reconciling, stalled
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
  if c.type == "Reconciling" then reconciling = c end
  if c.type == "Stalled" then stalled = c end
end

-- explain returns "reason: message" of the first condition present, or the fallback.
local function explain(first, second, fallback)
  local c = first or second
  if c == nil then return fallback end
  return c.reason .. ": " .. c.message
end

if (stalled ~= nil and stalled.status == "True") or obj.status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = explain(stalled, ready, "The TaskDownload failed")
  return hs
end

-- A published URL works: Healthy, also while it is being refreshed (routine, invisible here).
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

hs.status = "Progressing"
hs.message = explain(reconciling, ready, "Waiting for the signed URL")
return hs
