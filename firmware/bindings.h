/* Extra C bindings for esp-idf-sys: the esp32-camera driver (esp_camera_init, esp_camera_fb_get,
 * esp_camera_fb_return, esp_camera_sensor_get, sensor_t and its setters). The WebSocket client
 * needs no entry here: esp-idf-sys already includes esp_websocket_client.h when the component
 * is present. */
#include "esp_camera.h"
