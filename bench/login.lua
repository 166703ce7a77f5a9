-- wrk: POST /api/v1/auth/login as the bench user.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"bench@example.com","password":"a long pass phrase","client":"native"}'
