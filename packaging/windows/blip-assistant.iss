; Inno Setup script for BLIP Assistant. NOT RUN on the project's Linux machine; packaging\windows\build.ps1
; runs it on Windows CI after PyInstaller (ISCC /DAppVersion=VERSION, the version from pyproject.toml).
;
; Per-user install (no administrator rights): the bundle in %LOCALAPPDATA%\Programs\BLIP Assistant, a
; Start-menu entry, an optional "start at login" (the same Run value the app's setting writes, so either
; can remove it), and an uninstaller that asks whether to delete the user's settings, history and models.

#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#define AppName "BLIP Assistant"
#define AppExe "blip-assistant.exe"

[Setup]
AppId={{6A0C2F43-1E0B-4C39-9E53-BA5B1A551577}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=The BLIP Assistant project
DefaultDirName={localappdata}\Programs\{#AppName}
DefaultGroupName={#AppName}
PrivilegesRequired=lowest
OutputDir=..\..\dist
OutputBaseFilename=blip-assistant-{#AppVersion}-setup
SetupIconFile=blip-assistant.ico
UninstallDisplayIcon={app}\{#AppExe}
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern

[Tasks]
Name: "startatlogin"; Description: "Start {#AppName} when I log in"; GroupDescription: "Starting:"
Name: "desktopicon"; Description: "Create a desktop shortcut"; GroupDescription: "Shortcuts:"; Flags: unchecked

[Files]
Source: "..\..\dist\blip-assistant\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"; Comment: "Hear what is on your screen"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"
Name: "{userdesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Registry]
; The value name is assistant.autostart.APP_NAME: the app's "Start at login" setting reads and writes it.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueType: string; \
  ValueName: "{#AppName}"; ValueData: """{app}\{#AppExe}"""; Tasks: startatlogin; Flags: uninsdeletevalue
; Removed on uninstall even when the app's setting (not this installer) created it.
Root: HKCU; Subkey: "Software\Microsoft\Windows\CurrentVersion\Run"; ValueName: "{#AppName}"; \
  ValueType: none; Flags: uninsdeletevalue dontcreatekey

[Run]
Filename: "{app}\{#AppExe}"; Description: "Start {#AppName} now"; Flags: nowait postinstall skipifsilent

[UninstallRun]
; Close a running assistant first so that its files can be removed.
Filename: "{app}\{#AppExe}"; Parameters: "trigger quit"; Flags: runhidden skipifdoesntexist; RunOnceId: "QuitApp"

[Code]
// The user's data (assistant.home: %APPDATA%\blip-assistant) is theirs: ask before deleting it.
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  DataDir: String;
begin
  if CurUninstallStep = usPostUninstall then
  begin
    DataDir := ExpandConstant('{userappdata}\blip-assistant');
    if DirExists(DataDir) and not UninstallSilent() then
      if MsgBox('Also delete your settings, history, corrections and personal models?' + #13#10 +
                'They are in ' + DataDir + '.' + #13#10#13#10 +
                'Choose No to keep them for a later installation.',
                mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
        DelTree(DataDir, True, True, True);
  end;
end;
