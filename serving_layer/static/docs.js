// Swagger UI on this app's own document; the console's token (if any) goes on every request.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,  // no request leaves the app: the machines have no internet
  requestInterceptor: function (req) {
    var token = sessionStorage.getItem("headwater.token");
    if (token && !req.headers.Authorization) { req.headers.Authorization = "Bearer " + token; }
    return req;
  }
});
