// Swagger UI on this app's own document; the console's token (if any) goes on every request.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  requestInterceptor: function (req) {
    var token = sessionStorage.getItem("headwater.token");
    if (token && !req.headers.Authorization) { req.headers.Authorization = "Bearer " + token; }
    return req;
  }
});
