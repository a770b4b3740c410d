wrk.method = "POST"
wrk.body   = '{"model":"gpt-4o-mini","input":"Say hello to the benchmark."}'
wrk.headers["Content-Type"] = "application/json"
wrk.path = "/v1/responses"
