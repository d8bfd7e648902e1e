// The VrRecognition runtime module: the plain C++17 protocol core (Public/VrRecognitionCore, no engine
// types) and the Unreal layer around it (UVrRecognitionComponent: capture, JPEG encoding, WebSocket).
using UnrealBuildTool;

public class VrRecognition : ModuleRules
{
	public VrRecognition(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		CppStandard = CppStandardVersion.Cpp17;
		// The core needs neither exceptions nor RTTI (the engine's defaults, kept as they are).
		bEnableExceptions = false;
		bUseRTTI = false;

		PublicDependencyModuleNames.AddRange(new string[] { "Core", "CoreUObject", "Engine" });
		PrivateDependencyModuleNames.AddRange(new string[] { "WebSockets", "ImageWrapper", "RenderCore", "RHI" });
	}
}
