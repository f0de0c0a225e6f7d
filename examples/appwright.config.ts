import { defineConfig, Platform } from "appwright";

// The qgjob worker sets these for each group of specs it runs (see README.md):
//   QGJOB_BUILD_PATH            absolute path of the .apk it downloaded (emulator, device)
//   QGJOB_DEVICE_SERIAL         adb serial of the emulator or device it picked
//   QGJOB_BROWSERSTACK_APP_URL  bs:// url of the build it uploaded once (BrowserStack)
// Outside qgjob, set them yourself or rely on the defaults below.
const buildPath = process.env.QGJOB_BUILD_PATH ?? "./builds/app-release.apk";
const deviceSerial = process.env.QGJOB_DEVICE_SERIAL;
const browserstackAppUrl = process.env.QGJOB_BROWSERSTACK_APP_URL ?? buildPath;

export default defineConfig({
  testDir: "./tests",
  // AppWright's default is no timeout at all; qgjob passes --timeout too, this is for local runs.
  timeout: 5 * 60 * 1000,
  reporter: [["list"], ["html", { open: "never" }]],
  projects: [
    {
      name: "android-emulator",
      use: {
        platform: Platform.ANDROID,
        device: { provider: "emulator", udid: deviceSerial },
        buildPath,
      },
    },
    {
      name: "android-device",
      use: {
        platform: Platform.ANDROID,
        device: { provider: "local-device", udid: deviceSerial },
        buildPath,
      },
    },
    {
      name: "android-browserstack",
      use: {
        platform: Platform.ANDROID,
        device: {
          provider: "browserstack",
          name: process.env.QGJOB_BROWSERSTACK_DEVICE ?? "Google Pixel 8",
          osVersion: process.env.QGJOB_BROWSERSTACK_OS_VERSION ?? "14.0",
        },
        // A bs:// url makes AppWright skip its own upload: qgjob uploads each build once.
        buildPath: browserstackAppUrl,
      },
    },
  ],
});
